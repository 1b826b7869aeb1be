"""GPUs: a task asking for N gets N specific indices of its agent, which no other task gets.

An agent's GPUs are indices (0..n-1 unless named); a placement takes the lowest free ones. Those
held by placed tasks (``devices_used``) and those the same plan gave away are not free. A task
that fits nowhere for want of GPUs waits with "insufficient gpus".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pytest

from corral.scheduler import Code, Status, plan, plan_exhaustive
from corral.scheduler.harness import Harness, check_plan, first_refusals, where_devices


@dataclass(frozen=True)
class Agent:
    id: str
    gpus: int
    devices: tuple[int, ...] = ()  # named indices, if not 0..gpus-1
    held: tuple[int, ...] = ()  # indices a running task holds


@dataclass(frozen=True)
class Task:
    id: str
    gpus: int = 1
    group: str = "train"


@dataclass(frozen=True)
class Case:
    agents: Sequence[Agent]
    tasks: Sequence[Task]
    placed: Mapping[str, tuple[str, tuple[int, ...]]]  # task id -> (agent id, indices)
    unplaced: Mapping[str, str] = field(default_factory=dict)  # task id -> reason


CASES = {
    "two_one_gpu_tasks_on_a_two_gpu_agent_get_indices_0_and_1": Case(
        agents=[Agent("a1", 2)],
        tasks=[Task("t0"), Task("t1")],
        placed={"t0": ("a1", (0,)), "t1": ("a1", (1,))},
    ),
    "three_one_gpu_tasks_on_agents_of_two_and_one_gpus_get_three_distinct_pairs": Case(
        agents=[Agent("a1", 2), Agent("a2", 1)],
        tasks=[Task("t0"), Task("t1"), Task("t2"), Task("t3")],
        placed={"t0": ("a1", (0,)), "t1": ("a1", (1,)), "t2": ("a2", (0,))},
        unplaced={"t3": "0/2 agents fit: 2 insufficient gpus"},
    ),
    "a_two_gpu_task_gets_two_indices": Case(
        agents=[Agent("a1", 4)],
        tasks=[Task("t0", gpus=2), Task("t1", gpus=2)],
        placed={"t0": ("a1", (0, 1)), "t1": ("a1", (2, 3))},
    ),
    "an_index_a_running_task_holds_is_not_given_again": Case(
        agents=[Agent("a1", 2, held=(0,))],
        tasks=[Task("t0"), Task("t1")],
        placed={"t0": ("a1", (1,))},
        unplaced={"t1": "0/1 agents fit: 1 insufficient gpus"},
    ),
    "the_lowest_free_indices_are_given_whichever_are_held": Case(
        agents=[Agent("a1", 4, held=(1, 2))],
        tasks=[Task("t0", gpus=2)],
        placed={"t0": ("a1", (0, 3))},
    ),
    "named_indices_are_handed_out_as_named": Case(
        agents=[Agent("a1", 2, devices=(1, 3))],
        tasks=[Task("t0"), Task("t1")],
        placed={"t0": ("a1", (1,)), "t1": ("a1", (3,))},
    ),
    "a_task_asking_for_no_gpu_gets_no_index_and_leaves_them_free": Case(
        agents=[Agent("a1", 1)],
        tasks=[Task("cpu", gpus=0, group="batch"), Task("t0")],
        placed={"cpu": ("a1", ()), "t0": ("a1", (0,))},
    ),
    "gpus_of_two_agents_are_never_put_together_for_one_task": Case(
        agents=[Agent("a1", 1), Agent("a2", 1)],
        tasks=[Task("t0", gpus=2)],
        placed={},
        unplaced={"t0": "0/2 agents fit: 2 insufficient gpus"},
    ),
    "an_agent_without_gpus_takes_no_gpu_task": Case(
        agents=[Agent("cpu-only", 0)],
        tasks=[Task("t0")],
        placed={},
        unplaced={"t0": "0/1 agents fit: 1 insufficient gpus"},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_gpus(case: Case) -> None:
    h = Harness()
    for a in case.agents:
        h.add_agent(a.id, cpus=8, gpus=a.gpus, devices=a.devices)
    for a in case.agents:
        if a.held:
            h.add_placed(f"old-{a.id}", a.id, group="old", cpus=0, mem=0, devices=a.held)
    for t in case.tasks:
        h.add_task(t.id, group=t.group, cpus=0.5, gpus=t.gpus)
    result = h.plan()
    assert where_devices(result) == case.placed
    assert result.unplaced == case.unplaced
    assert check_plan(h.snapshot(), h.pending, result) == []
    slow = plan_exhaustive(h.snapshot(), h.pending)
    assert slow.placements == result.placements
    assert first_refusals(h.pending, slow) == first_refusals(h.pending, result)


def test_a_gang_turned_down_gives_its_gpus_back_to_the_tasks_decided_after() -> None:
    h = Harness()
    h.add_agent("a1", gpus=1)
    h.add_tasks(2, group="mpi", gpus=1, gang="mpi")  # two ranks, one GPU: neither runs
    h.add_task("solo", group="solo", gpus=1)
    result = h.plan()
    assert where_devices(result) == {"solo": ("a1", (0,))}
    assert result.waiting["mpi-0"].code is Code.UNSCHEDULABLE
    assert check_plan(h.snapshot(), h.pending, result) == []


def test_a_preemption_for_a_gpu_task_names_the_task_holding_the_gpu() -> None:
    h = Harness()
    h.add_agent("a1", gpus=2)
    h.add_placed("high", "a1", owner="alice", priority=1, devices=[0])
    h.add_placed("low", "a1", owner="alice", priority=0, devices=[1])
    h.add_task("urgent", owner="bob", gpus=1, priority=5)
    result = h.plan()
    assert [(p.task_id, p.by) for p in result.preemptions] == [("low", "urgent")]
    assert result.waiting["urgent"] == Status(
        Code.UNSCHEDULABLE, "0/1 agents fit: 1 insufficient gpus"
    )


def test_a_running_task_added_with_add_placed_holds_its_indices() -> None:
    h = Harness()
    h.add_agent("a1", gpus=2)
    h.add_placed("old", "a1", devices=[1])
    agent = h.snapshot().agents[0]
    assert (agent.used.gpus, agent.devices_used) == (1, frozenset({1}))
    h.add_task("new", gpus=1)
    assert where_devices(h.plan()) == {"new": ("a1", (0,))}


def test_indices_held_beyond_the_used_count_are_still_not_given() -> None:
    # A snapshot whose count says one GPU is free while both indices are held: indices win.
    h = Harness()
    agent = h.add_agent("a1", gpus=2)
    h.agents[0] = replace(agent, devices_used=frozenset({0, 1}))
    h.add_task("t0", gpus=1)
    result = h.plan()
    assert result.placements == ()
    assert result.unplaced == {"t0": "0/1 agents fit: 1 insufficient gpus"}


@pytest.mark.parametrize(
    "devices",
    [pytest.param((0,), id="fewer_indices_than_gpus"), pytest.param((2, 2), id="an_index_twice")],
)
def test_indices_that_do_not_name_each_gpu_once_are_a_malformed_snapshot(
    devices: tuple[int, ...],
) -> None:
    h = Harness()
    h.add_agent("a1", gpus=2, devices=devices)
    with pytest.raises(ValueError, match="GPU indices"):
        plan(h.snapshot(), [])
