"""Preemption through the master (simulated agents, a real store on each backend): a user
below their share whose task waited the threshold evicts a task of the user holding the
cluster; the victim is killed with who and why in its history, goes back to waiting as a new
attempt that uses up no retry, and finishes later exactly once. Off, nothing is evicted;
services only when marked preemptible."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from corral.api.app import create_app
from corral.master.records import LiveTask
from corral.spec.jobs import JobSpec
from corral.spec.states import RunState, TaskState
from tests.master.sim import Sim, SimAgent

T0 = 1_800_000_000.0
AFTER = 60.0
WHY = "preempted by task urgent.1.0.0 of user bob: bob below share, waited 75 s"


def job(name: str, array: str = "0", retries: int = 0) -> JobSpec:
    return JobSpec.model_validate(
        {"name": name, "array": array, "retries": retries, "task": {"shell": "true", "cpus": 1}}
    )


async def alice_holds_the_agent(sim: Sim, preempt_after: float | None = AFTER) -> SimAgent:
    """One agent of 4 cpus running alice's 4 tasks of 1 cpu; bob's task waits from T0."""
    sim.master.scheduler.preempt_after = preempt_after
    a1 = await sim.add_agent("a1", cpus=4)
    sim.master.jobs.submit(job("bulk", "0-3"), "alice")
    await sim.settle()
    for t in list(sim.master.state.tasks.values()):
        a1.report(t.id, TaskState.RUNNING)
    sim.master.jobs.submit(job("urgent"), "bob")
    await sim.settle()
    return a1


def run_state(sim: Sim) -> RunState:
    run = sim.master.queries.run("bulk", 1)
    assert run is not None
    return RunState(run["state"])


def killing(sim: Sim) -> list[LiveTask]:
    return [t for t in sim.master.state.tasks.values() if t.kill_requested]


def test_a_starved_users_task_evicts_one_task_which_is_requeued_and_finishes_once(
    sim: Sim, tmp_path: Path
) -> None:
    async def scenario() -> None:
        a1 = await alice_holds_the_agent(sim)
        # Before the threshold: bob waits, and the next pass is due when it is reached.
        assert killing(sim) == [] and sim.master.state.tasks["urgent.1.0.0"].agent_id is None
        assert sim.master.scheduler.due(sim.clock.now()) == T0 + AFTER

        sim.clock.t = T0 + 75
        await sim.settle()
        (victim,) = killing(sim)
        assert victim.owner == "alice" and victim.preempted_by == "urgent.1.0.0"
        assert a1.killed() == [victim.id]
        (event,) = [e for e in sim.store.events_since(0) if e["type"] == "task_preempted"]
        assert (event["task_id"], event["reason"]) == (victim.id, WHY)
        assert event["data"] == {"by": "urgent.1.0.0", "by_owner": "bob"}
        # A master started now would know the kill is a preemption.
        row = sim.store.task(victim.id)
        assert row is not None and LiveTask.from_row(row).preempted_by == "urgent.1.0.0"

        sim.confirm_kills()
        await sim.settle()
        ended = sim.store.task(victim.id)
        assert ended is not None and (ended["state"], ended["preempted_by"]) == (
            "KILLED",
            "urgent.1.0.0",
        )
        # Back to waiting as the next attempt, no retry used (the job has none), and bob's
        # task placed in the room it left.
        requeued = sim.store.task(victim.id[:-1] + "1")
        assert requeued is not None and (requeued["state"], requeued["requeues"]) == ("PENDING", 1)
        history = sim.store.task_events(requeued["id"])
        assert history[0]["reason"] == (
            "requeued after preemption by task urgent.1.0.0, not counted as a failure"
        )
        assert sim.master.state.tasks["urgent.1.0.0"].agent_id == "a1"
        assert run_state(sim) == RunState.RUNNING

        # Everything else finishes; the requeued attempt runs then and finishes once.
        a1.report("urgent.1.0.0", TaskState.FINISHED)
        for t in list(sim.master.state.tasks.values()):
            if t.job == "bulk" and t.state is TaskState.RUNNING:
                a1.report(t.id, TaskState.FINISHED)
        await sim.settle()
        a1.report(requeued["id"], TaskState.RUNNING)
        a1.report(requeued["id"], TaskState.FINISHED)
        await sim.settle()
        finished = Counter(
            r["slot"] for r in sim.store.tasks(job="bulk") if r["state"] == "FINISHED"
        )
        assert finished == {0: 1, 1: 1, 2: 1, 3: 1}
        assert run_state(sim) == RunState.SUCCEEDED
        assert sim.master.queries.usage(T0, T0 + 3600)[0].tasks["preempted"] == 1

        # The API's task views and the dashboard's task page say so. The simulated agent
        # answers no reads: gone, the page lists no files at once instead of waiting out
        # the master's 10 s read timeout.
        a1.disconnect()
        token = sim.master.ensure_admin_token(tmp_path / "admin.token")
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(sim.master), headers=headers) as client:
            gone = client.get(f"/api/v1/tasks/{victim.id}").json()
            again = client.get(f"/api/v1/tasks/{requeued['id']}").json()
            page = client.get(f"/ui/tasks/{victim.id}").text
        assert (gone["preempted_by"], gone["requeues"]) == ("urgent.1.0.0", 0)
        assert (again["preempted_by"], again["requeues"]) == (None, 1)
        assert 'href="/ui/tasks/urgent.1.0.0"' in page and "Preempted by" in page

    asyncio.run(scenario())


def test_a_pass_a_moment_before_the_threshold_leaves_the_next_pass_due_at_it(sim: Sim) -> None:
    """A timer may fire a moment before the wall clock reaches what it was set for (uvloop's
    count whole milliseconds from the loop's cached time): the pass it starts is too early to
    preempt, and the next one is due at the threshold all the same, not at the next tick."""

    async def scenario() -> None:
        await alice_holds_the_agent(sim)
        sim.clock.t = T0 + AFTER - 0.0005
        await sim.settle()
        assert killing(sim) == []
        sim.clock.t = T0 + AFTER + 0.0005
        assert sim.master.scheduler.due(sim.clock.now()) == T0 + AFTER  # overdue: at once
        await sim.settle()
        (victim,) = killing(sim)
        assert victim.preempted_by == "urgent.1.0.0"
        # Considered past the threshold by that pass: not due again (the tick plans anew).
        assert sim.master.scheduler.due(sim.clock.now()) is None

    asyncio.run(scenario())


def test_with_preemption_off_nothing_is_evicted(sim: Sim) -> None:
    async def scenario() -> None:
        await alice_holds_the_agent(sim, preempt_after=None)
        assert sim.master.scheduler.due(sim.clock.now()) is None
        sim.clock.t = T0 + 3600
        await sim.settle()
        assert killing(sim) == []
        assert not [e for e in sim.store.events_since(0) if e["type"] == "task_preempted"]

    asyncio.run(scenario())


@pytest.mark.parametrize("preemptible", [False, True], ids=["not marked", "marked"])
def test_a_services_task_is_evicted_only_when_it_is_marked_preemptible(
    sim: Sim, preemptible: bool
) -> None:
    async def scenario() -> None:
        sim.master.scheduler.preempt_after = AFTER
        await sim.add_agent("a1", cpus=4)
        doc = {"id": "/web", "instances": 4, "preemptible": preemptible}
        sim.deploy({**doc, "task": {"shell": "sleep 1000", "cpus": 1}})
        await sim.settle()
        sim.run_all("/web")
        sim.master.jobs.submit(job("urgent"), "bob")
        await sim.settle()
        sim.clock.t = T0 + 75
        await sim.settle()
        evicted = killing(sim)
        assert len(evicted) == (1 if preemptible else 0)
        if preemptible:
            sim.confirm_kills()
            await sim.settle()
            # The service replaces it as any stopped task, no failure counted; bob runs.
            assert len(sim.wanted("/web")) == 4
            assert sim.master.services.services["/web"].failures == 0
            assert sim.master.state.tasks["urgent.1.0.0"].agent_id == "a1"

    asyncio.run(scenario())


def test_a_preempted_task_killed_by_its_user_before_it_stopped_is_not_requeued(sim: Sim) -> None:
    async def scenario() -> None:
        await alice_holds_the_agent(sim)
        sim.clock.t = T0 + 75
        await sim.settle()
        (victim,) = killing(sim)
        await sim.master.kill_job("bulk")
        sim.confirm_kills()
        await sim.settle()
        row = sim.store.task(victim.id)
        assert row is not None and (row["state"], row["preempted_by"]) == ("KILLED", None)
        assert sim.store.task(victim.id[:-1] + "1") is None  # no next attempt
        assert run_state(sim) == RunState.KILLED

    asyncio.run(scenario())
