"""The applier makes a plan durable in one transaction and says what to send afterwards:
placements become STAGING, stops and preemptions mark their tasks to be killed with the reason;
what ended meanwhile is left alone, and a fenced master applies nothing."""

from __future__ import annotations

import asyncio
from contextlib import closing

import pytest

from corral.scheduler.model import Code, Placement, Plan, Preemption, Status, Stop
from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from corral.store.store import Fenced, Store
from tests.master.sim import Sim

NOW = 1_800_000_000.0


def job(name: str, array: str = "0") -> JobSpec:
    return JobSpec.model_validate({"name": name, "array": array, "task": {"command": ["x"]}})


async def cluster_with_running(sim: Sim) -> Sim:
    """One agent running ``low.1.0.0``; ``high.1.0.0`` waiting."""
    a1 = await sim.add_agent("a1")
    sim.master.jobs.submit(job("low"), "alice")
    await sim.settle()
    a1.report("low.1.0.0", TaskState.RUNNING)
    sim.master.scheduler.planner = lambda snapshot, requests: Plan((), {})  # plan nothing more
    sim.master.jobs.submit(job("high"), "bob")
    return sim


def test_placements_become_staging_with_their_event_and_launch_after_the_commit(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        await cluster_with_running(sim)
        state = sim.master.state
        task, agent = state.tasks["high.1.0.0"], state.agents["a1"]
        plan = Plan((Placement(task.id, agent.id),), {})
        outbox = sim.master.applier.plan(plan, [(task, agent)], NOW)
        assert outbox.launches == ((task, agent),) and outbox.kills == ()
        row = sim.store.task("high.1.0.0")
        assert row is not None and (row["state"], row["agent_id"]) == ("STAGING", "a1")
        assert [e["reason"] for e in sim.store.task_events("high.1.0.0")][-1] == "placed on a1"
        assert task.state is TaskState.STAGING
        assert agent.used == task.resources + state.tasks["low.1.0.0"].resources

    asyncio.run(scenario())


def test_a_preemption_marks_its_victim_killed_with_who_preempted_it(sim: Sim) -> None:
    async def scenario() -> None:
        await cluster_with_running(sim)
        why = Status(Code.PREEMPTED, "preempted by high.1.0.0 (priority 10)")
        plan = Plan((), {}, preemptions=(Preemption("low.1.0.0", "a1", "high.1.0.0", why),))
        outbox = sim.master.applier.plan(plan, [], NOW)
        (kill,) = outbox.kills
        assert (kill.task.id, kill.agent.id, kill.reason) == ("low.1.0.0", "a1", why.reason)
        assert sim.master.state.tasks["low.1.0.0"].kill_requested
        (event,) = [e for e in sim.store.events_since(0) if e["type"] == "task_preempted"]
        assert (event["task_id"], event["reason"]) == ("low.1.0.0", why.reason)
        assert event["data"] == {"by": "high.1.0.0", "by_owner": "bob"}
        row = sim.store.task("low.1.0.0")
        assert row is not None and row["preempted_by"] == "high.1.0.0"

    asyncio.run(scenario())


def test_a_stop_of_a_task_that_ended_meanwhile_sends_nothing(sim: Sim) -> None:
    async def scenario() -> None:
        await cluster_with_running(sim)
        sim.agents["a1"].report("low.1.0.0", TaskState.FINISHED)
        plan = Plan((), {}, stops=(Stop("low.1.0.0", "a1", Status(Code.STOPPED, "scaled")),))
        assert not sim.master.applier.plan(plan, [], NOW)

    asyncio.run(scenario())


def test_a_master_replaced_by_a_newer_one_applies_nothing(sim: Sim) -> None:
    async def scenario() -> None:
        await cluster_with_running(sim)
        sim.store.take_lead("old", NOW)
        with closing(Store(sim.store.url)) as newer:
            newer.take_lead("new", NOW)
        state = sim.master.state
        task, agent = state.tasks["high.1.0.0"], state.agents["a1"]
        with pytest.raises(Fenced):
            sim.master.applier.plan(Plan((Placement(task.id, agent.id),), {}), [(task, agent)], NOW)
        row = sim.store.task("high.1.0.0")
        assert row is not None and row["state"] == "PENDING"
        assert task.state is TaskState.PENDING

    asyncio.run(scenario())
