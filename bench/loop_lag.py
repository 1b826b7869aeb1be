"""How long the master's event loop stalls while its store commits big changes.

Run from the repository root: ``python bench/loop_lag.py`` (``--tasks N``, default 1,000).
For each backend (a SQLite file, and a real PostgreSQL started as the tests start it: Debian's
``postgresql`` package, a unix socket, run as the ``postgres`` user when root), it starts a
master in this process with its loops, connects 10 agents through the agent channel's own
handlers (their sessions record what the master sends), and measures the event loop's lag
(a coroutine sleeping 2 ms at a time, the lateness of each wake-up) while:

1. the scheduling pass places an array of N tasks submitted beforehand: one change of N
   placements;
2. the agents report every task RUNNING (batches of 100 updates, as the channel applies
   them), then FINISHED.

It prints, per backend and phase, the phase's wall time and the loop's worst and p99 lag:
the longest any WebSocket or API request waited behind the store. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corral.cli import event_loop  # noqa: E402
from corral.master.master import Master  # noqa: E402
from corral.master.records import AgentSession, LiveTask  # noqa: E402
from corral.spec.jobs import JobSpec  # noqa: E402
from corral.spec.protocol import AgentResources, Hello, StatusUpdate  # noqa: E402
from corral.spec.states import TaskState  # noqa: E402
from corral.store.store import Store  # noqa: E402
from tests.support.postgres import remove_server, start_server  # noqa: E402

AGENTS = 10
BATCH = 100  # status updates per message, about what an agent's journal sends at once
TICK = 0.002


class Lag:
    """The event loop's lateness, sampled every ``TICK`` seconds while it runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(TICK)
            self.samples.append(loop.time() - start - TICK)

    def summary(self) -> str:
        ordered = sorted(self.samples) or [0.0]
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return f"loop lag worst {ordered[-1] * 1000:7.1f} ms, p99 {p99 * 1000:6.1f} ms"


@contextlib.asynccontextmanager
async def sampling() -> AsyncIterator[Lag]:
    lag = Lag()
    task = asyncio.create_task(lag.run())
    try:
        yield lag
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.01)


async def report(master: Master, agent_id: str, updates: list[StatusUpdate]) -> None:
    """Apply an agent's status updates as the agent channel does (before issue 17, on the
    loop: ``apply_updates``; since, off it: ``report``), so one file measures both trees."""
    agent = master.state.agents[agent_id]
    off_loop = getattr(master.agents, "report", None)
    if off_loop is None:
        master.agents.apply_updates(agent, updates)
    else:
        await off_loop(agent, updates)


def batches(master: Master) -> list[tuple[str, list[LiveTask]]]:
    """Each agent's tasks in messages of ``BATCH`` updates."""
    mine: dict[str, list[LiveTask]] = {}
    for t in sorted(master.state.tasks.values(), key=lambda t: t.id):
        mine.setdefault(t.agent_id or "", []).append(t)
    return [
        (agent_id, ts[i : i + BATCH])
        for agent_id, ts in mine.items()
        for i in range(0, len(ts), BATCH)
    ]


async def one_backend(url: str, tasks: int) -> list[tuple[str, float, str]]:
    store = Store(url)
    master = Master(store)
    await master.start()
    await until(lambda: master.leading)  # it takes the lead, then loads the state
    sent: dict[str, list[dict[str, Any]]] = {}
    try:
        for i in range(AGENTS):
            name = f"agent-{i}"
            sent[name] = []

            async def receive(msg: dict[str, Any], box: list[dict[str, Any]] = sent[name]) -> None:
                box.append(msg)

            hello = Hello(
                agent_id=name,
                hostname=name,
                resources=AgentResources(cpus=tasks, mem=tasks * 64, disk=10_000),
                drivers=["process"],
            )
            await master.agents.hello(hello, AgentSession(receive))
        spec = JobSpec.model_validate(
            {"name": "lag", "array": f"0-{tasks - 1}", "task": {"command": ["true"], "cpus": 0.1}}
        )
        rows: list[tuple[str, float, str]] = []

        def staged() -> bool:
            live = master.state.tasks.values()
            return len(live) == tasks and all(t.state is TaskState.STAGING for t in live)

        # Submitted on the loop and before sampling: the API's routes submit from worker
        # threads, which is not what is measured here.
        master.scheduler.tick = 3600.0
        master.jobs.submit(spec, "bench")
        async with sampling() as lag:
            start = time.monotonic()
            master.state.wake.set()
            await until(staged)
            rows.append((f"place {tasks} (one plan)", time.monotonic() - start, lag.summary()))
        for state in (TaskState.RUNNING, TaskState.FINISHED):
            seqs = {name: itertools.count(master.state.agents[name].last_seq + 1) for name in sent}
            async with sampling() as lag:
                start = time.monotonic()
                for agent_id, batch in batches(master):
                    updates = [
                        StatusUpdate(
                            seq=next(seqs[agent_id]),
                            task_id=t.id,
                            state=state,
                            time=time.time(),
                            exit_code=0 if state is TaskState.FINISHED else None,
                        )
                        for t in batch
                    ]
                    await report(master, agent_id, updates)
                    await asyncio.sleep(0)  # the next message comes in from the socket
                rows.append(
                    (f"{tasks} updates {state.value}", time.monotonic() - start, lag.summary())
                )
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(master.stop(), 10)
        store.close()
    return rows


async def main_async(tasks: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="corral-lag-"))
    server = start_server()
    results: dict[str, list[tuple[str, float, str]]] = {}
    try:
        results["sqlite"] = await one_backend(f"sqlite:///{data / 'state.db'}", tasks)
        if server is None:
            print("PostgreSQL is not installed: apt-get install postgresql")
        else:
            results["postgresql"] = await one_backend(server.url(server.new_database()), tasks)
    finally:
        if server is not None:
            remove_server(server)
        shutil.rmtree(data, ignore_errors=True)
    for backend, rows in results.items():
        for what, took, lag in rows:
            print(f"{backend:<10} {what:<28} {took:6.2f} s   {lag}")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    event_loop.run(main_async(parser.parse_args().tasks))


if __name__ == "__main__":
    main()
