"""The master applies what the pure policies decide: a simulated master, real SQLite, the
effects' reasons read back from the event log."""

from __future__ import annotations

import asyncio
from typing import Any

from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from tests.master.sim import Sim


def job(name: str, **fields: Any) -> JobSpec:
    return JobSpec.model_validate({"name": name, "task": {"command": ["x"]}, **fields})


def events(sim: Sim, kind: str) -> list[tuple[str | None, str | None, str]]:
    """(job, state, reason) of every event of ``kind``, oldest first."""
    rows = sim.store.events_since(0)
    return [(e["job"], e["state"], e["reason"]) for e in rows if e["type"] == kind]


def test_a_failed_task_is_retried_then_its_run_fails_on_the_last_attempt(sim: Sim) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1")
        sim.master.jobs.submit(job("sim", retries=1, retry_backoff=0), "ann")
        await sim.settle()
        a1.report("sim.1.0.0", TaskState.FAILED)
        assert ("sim", "PENDING", "retry 1 of 1 in 0s after FAILED") in events(sim, "task_state")
        await sim.settle()
        a1.report("sim.1.0.1", TaskState.RUNNING)
        a1.report("sim.1.0.1", TaskState.FAILED)
        assert events(sim, "run_state") == [
            ("sim", "PENDING", ""),
            ("sim", "RUNNING", "task sim.1.0.1 is RUNNING"),
            ("sim", "FAILED", "1 FAILED"),
        ]
        sim.close()

    asyncio.run(scenario())


def test_a_child_starts_when_its_parent_succeeds(sim: Sim) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1")
        sim.master.jobs.submit(job("fetch"), "ann")
        sim.master.jobs.submit(job("analyse", parents=["fetch"]), "ann")
        await sim.settle()
        sim.clock.t += 1  # a success at the child's creation time would not be "since"
        a1.report("fetch.1.0.0", TaskState.FINISHED)
        assert ("analyse", "PENDING", "parents fetch succeeded") in events(sim, "run_state")
        assert "analyse.1.0.0" in sim.master.state.tasks
        sim.close()

    asyncio.run(scenario())
