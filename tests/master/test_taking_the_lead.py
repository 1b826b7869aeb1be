"""A master taking the lead loads its state in a worker thread: its event loop goes on serving
meanwhile (``/health``, the agents' WebSocket pings, the lease's look), however many tasks the
store holds (100,000 waiting ones take seconds to load)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import RowMapping

from corral.clock import SystemClock
from corral.master.master import Master
from corral.store.store import Store

PATIENCE = 10.0  # seconds the load waits to be let go before it goes on by itself


def test_the_event_loop_runs_while_the_state_loads(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    master = Master(store, SystemClock(), url="http://127.0.0.1:1")
    reading, let_go = threading.Event(), threading.Event()
    let_go_in_time: list[bool] = []
    real_read = store.active_tasks

    def slow_read() -> list[RowMapping]:
        # Holds the load until the event loop lets it go: it cannot while the load runs on it.
        reading.set()
        let_go_in_time.append(let_go.wait(PATIENCE))
        return real_read()

    store.active_tasks = slow_read  # type: ignore[method-assign]

    async def scenario() -> None:
        await master.start()
        try:
            assert await asyncio.to_thread(reading.wait, PATIENCE), "the master never loaded"
            assert not master.leading  # nobody is served a state half loaded
            let_go.set()  # the loop runs this while the load is under way
            async with asyncio.timeout(PATIENCE):
                while not master.leading:
                    await asyncio.sleep(0.01)
        finally:
            await master.stop()

    try:
        asyncio.run(scenario())
    finally:
        store.close()
    assert let_go_in_time == [True]
