"""The waiting room files PENDING tasks by cohort as they come and go. A pass takes from each
cohort its first members in their owner's order, as the core would order them all, and the
members it leaves out read why they wait from their cohort."""

from __future__ import annotations

import asyncio
from typing import Any

from corral.master.scheduling import snapshot_of
from corral.master.waiting import key_of, request_of
from corral.scheduler import plan
from corral.scheduler.cohorts import cohort_key
from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from tests.master.sim import Sim


def sweep(array: str, **fields: Any) -> JobSpec:
    task = {"shell": "true", "cpus": 1}
    return JobSpec.model_validate({"name": "sweep", "array": array, "task": task, **fields})


def test_a_later_run_of_higher_priority_goes_first_though_it_came_last(sim: Sim) -> None:
    async def scenario() -> None:
        agent = await sim.add_agent("a1", cpus=1)
        sim.master.jobs.submit(sweep("0-9"), "alice")
        await sim.master.scheduler.run_once()
        assert agent.launched() == ["sweep.1.0.0"]
        # The same job, owner and shape: one cohort, whose new members rank ahead of the rest.
        sim.master.jobs.apply(sweep("0-2", priority=5), "alice")
        agent.report("sweep.1.0.0", TaskState.FINISHED)
        await asyncio.sleep(0)
        waiting = list(sim.master.state.waiting.tasks.values())
        unwindowed = plan(snapshot_of(sim.master.state), [request_of(t) for t in waiting])
        await sim.master.scheduler.run_once()
        placed = [p.task_id for p in unwindowed.placements]
        assert agent.launched()[1:] == placed == ["sweep.2.0.0"]
        left = list(sim.master.state.waiting.tasks.values())
        assert len(left) == 11
        assert {t.waiting for t in left} == {unwindowed.waiting[t.id].reason for t in left}

    asyncio.run(scenario())


def test_a_retry_in_its_backoff_keeps_its_own_reason_and_is_taken_once_it_ends(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        agent = await sim.add_agent("a1", cpus=1)
        sim.master.jobs.submit(sweep("0-4", retries=1, retry_backoff=30), "alice")
        await sim.settle()
        agent.report("sweep.1.0.0", TaskState.FAILED)
        await sim.settle()
        room = sim.master.state.waiting
        retry = room.tasks["sweep.1.0.1"]
        assert retry.not_before == sim.clock.now() + 30
        # The pass placed the next member and told the others left out why they wait; the
        # retry was in no pass: it says nothing it was not told.
        assert agent.launched() == ["sweep.1.0.0", "sweep.1.1.0"]
        assert all(room.tasks[f"sweep.1.{i}.0"].waiting for i in (2, 3, 4))
        assert retry.waiting == ""
        for task_id in ("sweep.1.1.0", "sweep.1.2.0", "sweep.1.3.0", "sweep.1.4.0"):
            sim.clock.t += 1
            agent.report(task_id, TaskState.FINISHED)
            await sim.settle()
        assert agent.launched()[-1] == "sweep.1.4.0"
        agent.report("sweep.1.4.0", TaskState.FINISHED)
        await sim.settle()
        assert list(room.tasks) == ["sweep.1.0.1"]  # its backoff is not over: not placed
        sim.clock.t = retry.not_before or 0.0
        await sim.settle()
        assert agent.launched()[-1] == "sweep.1.0.1" and room.tasks == {}

    asyncio.run(scenario())


def test_a_task_killed_while_waiting_leaves_the_room_and_its_cohort(sim: Sim) -> None:
    async def scenario() -> None:
        agent = await sim.add_agent("a1", cpus=1)
        sim.master.jobs.submit(sweep("0-2"), "alice")
        await sim.settle()
        await sim.master.kill_job("sweep")
        sim.confirm_kills()
        await sim.settle()
        assert sim.master.state.waiting.tasks == {}
        sim.master.jobs.start_run("sweep")
        await sim.settle()
        assert agent.launched()[-1] == "sweep.2.0.0"

    asyncio.run(scenario())


def test_a_task_is_filed_under_the_cohort_the_core_would_give_its_request(sim: Sim) -> None:
    """The room files a task without making its request (a pass makes it when it takes the
    task): the key it reads off the task must be the core's ``cohort_key`` of that request, or
    a cohort cut to the room would not be the core's."""
    port = {"portMappings": [{"containerPort": 80, "hostPort": 18480}]}
    specs = [
        sweep("0-1"),
        sweep("0-1", constraints=[["hostname", "UNIQUE"]], name="spread"),
        JobSpec.model_validate({"name": "mpi", "nodes": 2, "task": {"shell": "true", "cpus": 1}}),
        JobSpec.model_validate(
            {"name": "web", "task": {"docker": {"image": "web", **port}, "cpus": 1}}
        ),
    ]

    async def scenario() -> None:
        for name in ("a1", "a2"):  # a gang is admitted only where its nodes could go
            await sim.add_agent(name, cpus=1, drivers=["process", "docker"])
        for spec in specs:
            sim.master.jobs.submit(spec, "alice")
        waiting = list(sim.master.state.waiting.tasks.values())
        assert len(waiting) == 2 + 2 + 2 + 1
        assert {t.job for t in waiting if request_of(t).gang} == {"mpi"}
        for task in waiting:
            assert key_of(task) == cohort_key(request_of(task))
        assert len({key_of(t) for t in waiting}) == 4  # one cohort per job: its tasks are alike

    asyncio.run(scenario())


def test_a_master_loading_its_tasks_again_files_each_once_whatever_their_priorities(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        sim.master.jobs.submit(sweep("0-2"), "alice")
        # A later run of lower priority: the same cohort, filed after the first one's tasks.
        sim.master.jobs.apply(sweep("0-2", priority=-1), "alice")
        sim.master.state.load()  # as when a master takes over: every live task is added again
        assert len(sim.master.state.waiting.tasks) == 6
        agent = await sim.add_agent("a1", cpus=6)
        result = await sim.master.scheduler.run_once()  # the core refuses a task given twice
        assert result is not None and len(result.placements) == 6
        assert sorted(agent.launched()) == [f"sweep.{r}.{i}.0" for r in (1, 2) for i in range(3)]

    asyncio.run(scenario())
