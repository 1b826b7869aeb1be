"""The scheduling pass plans in a worker thread, so the event loop (the API, /health, agents)
goes on while a large plan is made; what changed meanwhile is checked before anything is placed.

The planner is the real core, held at its start until the test has done something on the loop:
had it run on the loop, nothing there could run and the hold would time out.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import TYPE_CHECKING

from corral.master.waiting import request_of
from corral.scheduler import plan
from corral.scheduler.model import Plan, Snapshot, TaskRequest
from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from tests.master.sim import Sim

if TYPE_CHECKING:
    from _typeshed import TraceFunction

HOLD = 10.0  # seconds; the deadline of every wait


class HeldPlanner:
    """The real planner, which starts planning only once the loop has let it go."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.go = threading.Event()
        self.released_in_time: list[bool] = []

    def __call__(self, snapshot: Snapshot, requests: Sequence[TaskRequest]) -> Plan:
        self.started.set()
        self.released_in_time.append(self.go.wait(HOLD))
        return plan(snapshot, requests)


async def hold_a_pass(sim: Sim, while_held: object = None) -> HeldPlanner:
    """Run one pass with a held planner; release it from the loop once it is planning."""
    planner = HeldPlanner()
    sim.master.scheduler.planner = planner
    pass_ = asyncio.create_task(sim.master.scheduler.run_once())
    assert await asyncio.to_thread(planner.started.wait, HOLD), "the pass never started to plan"
    if callable(while_held):
        while_held()
    planner.go.set()  # only reached if the loop runs while the plan is being made
    await asyncio.wait_for(pass_, HOLD)
    return planner


def submit(sim: Sim, name: str, array: str) -> None:
    spec = JobSpec.model_validate({"name": name, "array": array, "task": {"shell": "true"}})
    sim.master.jobs.submit(spec, "alice")


def test_the_event_loop_runs_while_a_pass_plans(sim: Sim) -> None:
    async def scenario() -> None:
        agent = await sim.add_agent("a1", cpus=4)
        submit(sim, "sweep", "0-3")
        planner = await hold_a_pass(sim)
        assert planner.released_in_time == [True]
        assert sorted(agent.launched()) == [f"sweep.1.{i}.0" for i in range(4)]

    asyncio.run(scenario())


def test_a_task_killed_while_the_plan_is_made_is_not_placed(sim: Sim) -> None:
    async def scenario() -> None:
        agent = await sim.add_agent("a1", cpus=4)
        submit(sim, "doomed", "0-1")
        submit(sim, "kept", "0-1")
        await hold_a_pass(sim, lambda: sim.master.jobs.kill("doomed"))
        assert sorted(agent.launched()) == ["kept.1.0.0", "kept.1.1.0"]
        states = {t.id: t.state for t in sim.master.state.tasks.values()}
        assert not any(s is TaskState.STAGING for i, s in states.items() if i.startswith("doomed"))

    asyncio.run(scenario())


def test_nothing_is_placed_on_an_agent_that_went_away_while_the_plan_was_made(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        agent = await sim.add_agent("a1", cpus=4)
        submit(sim, "sweep", "0-1")
        await hold_a_pass(sim, agent.disconnect)
        assert agent.launched() == []
        assert all(t.state is TaskState.PENDING for t in sim.master.state.tasks.values())

    asyncio.run(scenario())


def test_a_waiting_task_s_request_is_made_once_and_made_again_when_its_wait_changes(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        submit(sim, "sweep", "0-1")
        await sim.settle()  # no agent: both wait
        task = sim.master.state.tasks["sweep.1.0.0"]
        first = request_of(task)
        assert request_of(task) is first  # the next pass asks again: the same request
        assert first.waiting_since == task.created_at
        task.not_before = task.created_at + 5  # a backoff: it waits from its end
        later = request_of(task)
        assert later is not first and later.waiting_since == task.created_at + 5
        assert later.id == first.id and later.resources == first.resources
        await sim.add_agent("a1", cpus=4)
        task.not_before = None
        await sim.settle()
        assert task.state is TaskState.STAGING and task.request is None  # placed: let go

    asyncio.run(scenario())


def test_a_pass_plans_what_the_room_can_take_and_tells_the_rest_why_they_wait(sim: Sim) -> None:
    seen: list[int] = []

    def counting(snapshot: Snapshot, requests: Sequence[TaskRequest]) -> Plan:
        seen.append(len(requests))
        return plan(snapshot, requests)

    async def scenario() -> None:
        agent = await sim.add_agent("a1", cpus=2)
        spec = {"name": "sweep", "array": "0-499", "task": {"shell": "true", "cpus": 0.5}}
        sim.master.jobs.submit(JobSpec.model_validate(spec), "alice")
        sim.master.scheduler.planner = counting
        await sim.master.scheduler.run_once()
        # Room for 4: the core sees those and one more, which learns why the rest waits.
        assert seen == [5]
        assert sorted(agent.launched()) == [f"sweep.1.{i}.0" for i in range(4)]
        waiting = [t for t in sim.master.state.tasks.values() if t.state is TaskState.PENDING]
        assert len(waiting) == 496
        assert {t.waiting for t in waiting} == {waiting[0].waiting} and waiting[0].waiting

    asyncio.run(scenario())


def test_a_pass_costs_what_the_room_takes_not_what_waits(sim: Sim) -> None:
    """With 20,000 tasks waiting and room for 2, a pass runs some thousands of lines of Python
    (as many with 40,000), not some for every waiting task (as it did when it walked them all
    to find the ready ones, grouped them and noted each one's reason)."""
    lines = 0

    def trace(frame: FrameType, event: str, arg: object) -> TraceFunction:
        nonlocal lines
        if event == "line":
            lines += 1
        return trace

    async def scenario() -> None:
        nonlocal lines
        agent = await sim.add_agent("a1", cpus=2)
        spec = {"name": "sweep", "array": "0-19999", "task": {"shell": "true", "cpus": 1}}
        sim.master.jobs.submit(JobSpec.model_validate(spec), "alice")
        await sim.master.scheduler.run_once()
        first = agent.launched()
        assert len(first) == 2
        for task_id in first:
            agent.report(task_id, TaskState.FINISHED)
        await asyncio.sleep(0)
        lines = 0
        threading.settrace(trace)  # the plan is made in a worker thread, started from now on
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
        sys.settrace(trace)
        try:
            await sim.master.scheduler.run_once()
        finally:
            sys.settrace(None)
            threading.settrace(None)
        assert len(agent.launched()) == 4
        assert lines < 10_000, lines  # 545,000 when it walked them
        waiting = list(sim.master.state.waiting.tasks.values())
        assert len(waiting) == 19_996
        reasons = {t.waiting for t in waiting}
        assert len(reasons) == 1 and reasons.pop()  # the rest learned why they wait, too

    asyncio.run(scenario())
