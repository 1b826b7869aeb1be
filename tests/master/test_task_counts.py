"""Task counts kept as tasks change, instead of counted on every read: each run's tasks per
state (newest attempts) on its row, and every task per owner and state in the master's memory.
After any mix of placements, ends, retries, kills and deletions they equal a count of the
tasks in the store, on either backend."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from corral.store.bulk import counts_of
from corral.store.schema import tasks
from tests.master.sim import Sim


def job(name: str, array: str, retries: int = 0) -> JobSpec:
    task = {"command": ["x"], "cpus": 1, "mem": 64}
    return JobSpec.model_validate({"name": name, "array": array, "retries": retries, "task": task})


def counted_runs(sim: Sim) -> dict[tuple[str, int], dict[str, int]]:
    """Each run's newest-attempt tasks per state, counted in the store."""
    stmt = (
        select(tasks.c.job, tasks.c.run, tasks.c.state, func.count())
        .where(tasks.c.latest)
        .group_by(tasks.c.job, tasks.c.run, tasks.c.state)
    )
    found: dict[tuple[str, int], dict[str, int]] = {}
    with sim.store.engine.connect() as conn:
        for name, run, state, n in conn.execute(stmt):
            found.setdefault((name, run), {})[state] = n
    return found


def kept_runs(sim: Sim, names: list[str]) -> dict[tuple[str, int], dict[str, int]]:
    """Each run's counts as its row keeps them."""
    return {
        (name, r["number"]): counts_of(r)
        for name in names
        for r in sim.store.runs(name)
        if counts_of(r)
    }


def counted_tasks(sim: Sim) -> Counter[tuple[str, str]]:
    return sim.store.task_counts()


def kept_tasks(sim: Sim) -> Counter[tuple[str, str]]:
    return Counter({k: n for k, n in sim.master.state.task_counts.items() if n})


def test_counts_kept_through_placements_ends_retries_kills_and_deletions_equal_a_count(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        agent = await sim.add_agent("a1", cpus=4, mem=4096)
        sim.master.jobs.submit(job("sweep", "0-5", retries=2), "alice")
        sim.master.jobs.submit(job("other", "0-2"), "bob")
        await sim.settle()  # 4 of the 9 tasks fit: STAGING, the others wait
        placed = [t for t in sim.master.state.tasks.values() if t.state is TaskState.STAGING]
        agent.report(placed[0].id, TaskState.RUNNING)
        agent.report(placed[0].id, TaskState.FAILED)  # retried: its next attempt waits
        agent.report(placed[1].id, TaskState.RUNNING)
        agent.report(placed[1].id, TaskState.FINISHED)
        agent.report(placed[2].id, TaskState.LOST)
        await sim.master.kill_job("other")
        sim.confirm_kills()
        await sim.settle()
        assert kept_runs(sim, ["sweep", "other"]) == counted_runs(sim)
        assert set(counted_runs(sim)) == {("sweep", 1), ("other", 1)}
        assert kept_tasks(sim) == counted_tasks(sim)
        assert sum(counted_runs(sim)[("sweep", 1)].values()) == 6  # newest attempts only
        sim.master.jobs.delete("other")
        assert kept_tasks(sim) == counted_tasks(sim)
        assert ("bob", "KILLED") not in kept_tasks(sim)

    asyncio.run(scenario())


def test_a_restarted_master_counts_what_the_store_holds(sim: Sim) -> None:
    async def scenario() -> None:
        await sim.add_agent("a1", cpus=2, mem=4096)
        sim.master.jobs.submit(job("sweep", "0-4"), "alice")
        await sim.settle()
        again = Sim(sim.store.url)
        try:
            assert kept_tasks(again) == kept_tasks(sim) == counted_tasks(sim)
            assert kept_tasks(sim) == Counter({("alice", "STAGING"): 2, ("alice", "PENDING"): 3})
        finally:
            again.close()

    asyncio.run(scenario())
