"""The master's ClusterView follows its live tasks through submit, placement, kills and ends:
by job, by agent and by owner, it lists what a scan of the live tasks would; and the waiting
room holds the tasks a scan would find PENDING, in the order they came."""

from __future__ import annotations

import asyncio

import pytest

from corral.master.master import Master
from corral.master.scheduling import snapshot_of
from corral.master.view import TaskInfo
from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from corral.store.rows import TaskRow
from tests.master.sim import Sim


def submit(sim: Sim, name: str, array: str, owner: str) -> None:
    spec = JobSpec.model_validate({"name": name, "array": array, "task": {"shell": "true"}})
    sim.master.jobs.submit(spec, owner)


def assert_view_matches_a_scan(master: Master) -> None:
    live = list(master.state.tasks.values())
    assert list(master.state.waiting.tasks) == [t.id for t in live if t.state is TaskState.PENDING]
    view = master.view
    assert {t.id for t in view.tasks()} == {t.id for t in live}
    for job in {t.job for t in live} | set(view.jobs_with_tasks()):
        assert [t.id for t in view.tasks_of_job(job)] == [t.id for t in live if t.job == job]
    for owner in {t.owner for t in live}:
        assert {t.id for t in view.tasks_of_owner(owner)} == {
            t.id for t in live if t.owner == owner
        }
    for agent in master.state.agents:
        assert {t.id for t in view.tasks_on_agent(agent)} == {
            t.id for t in live if t.agent_id == agent
        }


def test_the_view_follows_tasks_from_submit_to_their_end(sim: Sim) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1", cpus=2)
        submit(sim, "sweep", "0-3", "alice")
        submit(sim, "solo", "0", "bob")
        view = sim.master.view
        assert len(view.tasks_of_job("sweep")) == 4
        assert len(view.tasks_of_owner("bob")) == 1
        assert view.tasks_on_agent("a1") == ()
        assert_view_matches_a_scan(sim.master)

        await sim.settle()
        placed = view.tasks_on_agent("a1")
        assert placed and all(t.state is TaskState.STAGING for t in placed)
        assert_view_matches_a_scan(sim.master)

        for task in placed:
            a1.report(task.id, TaskState.FINISHED)
        await sim.settle()
        assert_view_matches_a_scan(sim.master)

        await sim.master.kill_job("sweep")
        sim.confirm_kills()
        await sim.settle()
        assert_view_matches_a_scan(sim.master)
        sim.close()

    asyncio.run(scenario())


def test_the_schedulers_snapshot_lists_every_placed_task_with_its_agent(sim: Sim) -> None:
    async def scenario() -> None:
        await sim.add_agent("a1", cpus=1)
        await sim.add_agent("a2", cpus=1)
        submit(sim, "sweep", "0-29", "alice")
        await sim.settle()
        live = sim.master.state.tasks.values()
        placed = {(p.task_id, p.agent_id, p.owner) for p in snapshot_of(sim.master.state).placed}
        assert placed == {(t.id, t.agent_id, t.owner) for t in live if t.agent_id is not None}
        assert {a for _, a, _ in placed} == {"a1", "a2"}
        sim.close()

    asyncio.run(scenario())


def test_the_views_mappings_refuse_writes(sim: Sim) -> None:
    submit(sim, "sweep", "0", "alice")
    with pytest.raises(TypeError):
        sim.master.view.runs[("sweep", 2)] = sim.master.view.runs[("sweep", 1)]  # type: ignore[index]
    with pytest.raises(TypeError):
        del sim.master.view.specs["sweep"]  # type: ignore[attr-defined]


def test_a_reloaded_master_files_its_tasks_once(sim: Sim) -> None:
    submit(sim, "sweep", "0-2", "alice")
    sim.master.state.load()  # as when a master takes over: every live task is added again
    assert len(sim.master.view.tasks_of_job("sweep")) == 3
    assert len(sim.master.view.tasks_of_owner("alice")) == 3
    assert len(sim.master.state.waiting.tasks) == 3


async def a_retry_backing_off(sim: Sim) -> tuple[TaskInfo, TaskInfo]:
    """A task of agent a1 (1 cpu) that failed, and its retry waiting out a 60 s backoff."""
    a1 = await sim.add_agent("a1", cpus=1)
    spec = JobSpec.model_validate(
        {"name": "flaky", "retries": 2, "retry_backoff": 60, "task": {"shell": "false"}}
    )
    sim.master.jobs.submit(spec, "alice")
    await sim.settle()
    (first,) = sim.master.view.tasks_on_agent("a1")
    a1.report(first.id, TaskState.FAILED)
    await sim.settle()
    (retry,) = sim.master.view.tasks_of_job("flaky")
    return first, retry


def test_retries_waiting_out_their_backoff_are_pending_and_a_pass_skips_them(sim: Sim) -> None:
    async def scenario() -> None:
        first, retry = await a_retry_backing_off(sim)
        assert retry.id != first.id and retry.state is TaskState.PENDING
        assert list(sim.master.state.waiting.tasks) == [retry.id]
        assert_view_matches_a_scan(sim.master)
        now = sim.master.state.clock.now()
        next_due = sim.master.scheduler.due(now)
        assert next_due == sim.master.state.waiting.tasks[retry.id].not_before
        assert await sim.master.scheduler.run_once() is None  # nothing ready: no plan
        await sim.master.kill_job("flaky")
        await sim.settle()
        assert sim.master.state.waiting.tasks == {}
        assert_view_matches_a_scan(sim.master)
        sim.close()

    asyncio.run(scenario())


def test_a_pass_a_moment_before_a_backoff_ends_leaves_the_next_pass_due_at_its_end(
    sim: Sim,
) -> None:
    """A timer may fire a moment before the wall clock reaches what it was set for (uvloop's
    count whole milliseconds from the loop's cached time): the pass it starts finds the retry
    still backing off, and a pass is due as soon as the backoff is over, not at the tick."""

    async def scenario() -> None:
        _, retry = await a_retry_backing_off(sim)
        ends = sim.master.state.waiting.tasks[retry.id].not_before
        assert ends is not None
        sim.clock.t = ends - 0.0005
        assert await sim.master.scheduler.run_once() is None  # still backing off
        sim.clock.t = ends + 0.0005
        next_due = sim.master.scheduler.due(sim.clock.now())
        assert next_due is not None and next_due <= sim.clock.now()  # at once
        assert await sim.master.scheduler.run_once() is not None
        assert sim.master.state.tasks[retry.id].agent_id == "a1"
        sim.close()

    asyncio.run(scenario())


def test_a_master_taking_the_lead_reads_back_each_task_as_it_was_made(sim: Sim) -> None:
    """The live tasks are read back from their launches' stored JSON text, validated as it is
    (``Store.active_tasks``): every row read equals the row made at submission."""

    async def scenario() -> None:
        for name in ("a1", "a2"):
            await sim.add_agent(name, cpus=1, drivers=["process", "docker"])
        port = {"portMappings": [{"containerPort": 80, "hostPort": 18480}]}
        for doc in (
            {
                "name": "sweep",
                "array": "0-2",
                "params": {"e": ["lo", "hi"]},
                "constraints": [["hostname", "UNIQUE"]],
                "placement": "spread",
                "task": {"shell": "echo {e}", "cpus": 1, "env": {"X": "1"}},
            },
            {"name": "web", "priority": 3, "task": {"docker": {"image": "web", **port}}},
            {"name": "mpi", "nodes": 2, "task": {"shell": "mpirun x", "cpus": 1}},
        ):
            sim.master.jobs.submit(JobSpec.model_validate(doc), "alice")
        made = {t.id: t.row for t in sim.master.state.tasks.values()}
        read = {row["id"]: TaskRow.stored(dict(row)) for row in sim.store.active_tasks()}
        assert len(made) == 6 + 1 + 2
        assert read == made

    asyncio.run(scenario())
