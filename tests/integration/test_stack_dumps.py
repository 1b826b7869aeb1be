"""``kill -USR1`` on a master or an agent prints where each thread and each asyncio task is, and
the process goes on serving: how a wedged daemon is diagnosed without stopping it."""

from __future__ import annotations

import asyncio
import signal

from corral.cli.stack_dumps import await_chain
from tests.support.cluster import Cluster, leads, wait_for_file


def test_sigusr1_prints_threads_and_tasks_and_the_daemons_go_on(cluster: Cluster) -> None:
    cluster.add_agent("a1")
    assert cluster.master is not None
    cluster.master.send(signal.SIGUSR1)
    cluster.agents["a1"].send(signal.SIGUSR1)

    master_log = wait_for_file(cluster.root / "master.log", 30, "asyncio task 'scheduler'")
    assert "Current thread" in master_log  # the threads' part, from faulthandler
    # The task's whole await chain, down to where the scheduling loop waits.
    assert "scheduling.py" in master_log.split("asyncio task 'scheduler'")[1].split("asyncio")[0]
    agent_log = wait_for_file(cluster.agents["a1"].log, 30, "in _stay_connected")
    assert "Current thread" in agent_log

    assert cluster.master.running and cluster.agents["a1"].running
    assert leads(cluster.url)
    assert cluster.agent_state("a1") == "ACTIVE"


def test_await_chain_follows_a_suspended_coroutine_down_to_what_it_awaits() -> None:
    async def inner(entered: asyncio.Event, gate: asyncio.Event) -> None:
        entered.set()
        await gate.wait()

    async def outer(entered: asyncio.Event, gate: asyncio.Event) -> None:
        await inner(entered, gate)

    async def main() -> list[str]:
        entered, gate = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(outer(entered, gate))
        await entered.wait()
        chain = list(await_chain(task.get_coro()))
        gate.set()
        await task
        return chain

    names = [where.rsplit(" in ", 1)[1] for where in asyncio.run(main())]
    assert names[:3] == ["outer", "inner", "wait"]
