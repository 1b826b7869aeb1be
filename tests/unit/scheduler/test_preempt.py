"""Preempt: a task that fits nowhere names the lower-priority placed tasks that would make room."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from corral.scheduler import Code, Constraint, Operator, Preemption, Status, plan_exhaustive
from corral.scheduler.harness import Harness, check_plan, quota


@dataclass(frozen=True)
class Case:
    """A cluster arranged by ``arrange``; the preemptions as (victim, agent, for whom)."""

    arrange: Callable[[Harness], object]
    preempted: list[tuple[str, str, str]]


def _lowest_priority_before_fewest(h: Harness) -> None:
    h.add_agents(2, cpus=4)
    h.add_placed("low-a", "agent-00", cpus=2, priority=1)
    h.add_placed("low-b", "agent-00", cpus=2, priority=1)
    h.add_placed("mid", "agent-01", cpus=4, priority=5)
    h.add_task("urgent", cpus=4, priority=10)


def _fewest_victims(h: Harness) -> None:
    h.add_agents(2, cpus=4)
    for i in range(4):
        h.add_placed(f"small-{i}", "agent-00", cpus=1, priority=1)
    h.add_placed("big-0", "agent-01", cpus=2, priority=1)
    h.add_placed("big-1", "agent-01", cpus=2, priority=1)
    h.add_task("urgent", cpus=2, priority=10)


def _largest_first_among_equals(h: Harness) -> None:
    h.add_agent("a", cpus=4)
    h.add_placed("one", "a", cpus=1, priority=1)
    h.add_placed("three", "a", cpus=3, priority=1)
    h.add_task("urgent", cpus=3, priority=10)


def _reprieve(h: Harness) -> None:
    h.add_agent("a", cpus=4)
    h.add_placed("lowest", "a", cpus=1, priority=1)  # taken first, then not needed after all
    h.add_placed("higher", "a", cpus=3, priority=2)
    h.add_task("urgent", cpus=3, priority=10)


def _equal_priorities(h: Harness) -> None:
    h.add_agents(1, cpus=2)
    h.add_placed("peer", "agent-00", cpus=2, priority=5)
    h.add_task("same", cpus=2, priority=5)


def _unresolvable_everywhere(h: Harness) -> None:
    h.add_agents(2, cpus=2)
    h.add_placed("low", "agent-00", cpus=2, priority=1)
    h.add_task("docker-only", cpus=2, priority=10, driver="docker")


def _over_quota(h: Harness) -> None:
    h.add_agents(1, cpus=2)
    h.add_placed("low", "agent-00", cpus=2, priority=1, owner="bob")
    h.add_task("urgent", cpus=2, priority=10, owner="alice")
    h.quotas = {"alice": quota(cpus=1)}


def _victims_are_not_shared(h: Harness) -> None:
    h.add_agents(2, cpus=4)
    h.add_placed("low-0", "agent-00", cpus=4, priority=1)
    h.add_placed("low-1", "agent-01", cpus=4, priority=2)
    h.add_task("first", group="first", cpus=4, priority=10)
    h.add_task("second", group="second", cpus=4, priority=9)
    h.add_task("third", group="third", cpus=4, priority=8)  # nothing left to evict


def _room_left_by_an_earlier_preemption(h: Harness) -> None:
    h.add_agents(1, cpus=4)
    h.add_placed("low", "agent-00", cpus=4, priority=1)
    h.add_task("first", group="first", cpus=2, priority=10)
    h.add_task("second", group="second", cpus=2, priority=9)


def _host_port_held(h: Harness) -> None:
    h.add_agents(1, cpus=2)
    h.add_placed("low", "agent-00", cpus=2, priority=1, host_ports=[80])
    h.add_task("web", cpus=2, priority=10, host_ports=[80])


def _gang_member(h: Harness) -> None:
    h.add_agents(1, cpus=2)
    h.add_placed("low", "agent-00", cpus=2, priority=1)
    h.add_tasks(2, group="mpi", cpus=1, priority=10, gang="mpi")


def _agent_gone(h: Harness) -> None:
    h.add_agents(1, cpus=2, mem=1024)
    h.add_placed("elsewhere", "gone", cpus=2, priority=1)  # its agent left the snapshot
    h.add_task("urgent", cpus=2, mem=2048, priority=10)


def _group_rule(h: Harness) -> None:
    h.add_agents(1, cpus=4)
    h.add_placed("sibling", "agent-00", group="web", cpus=1, priority=10)
    h.add_placed("low", "agent-00", group="batch", cpus=3, priority=1)
    unique = Constraint("hostname", Operator.UNIQUE)
    h.add_task("web-1", group="web", cpus=2, priority=10, constraints=[unique])


CASES = {
    "a_priority_10_task_that_fits_nowhere_names_the_priority_1_tasks_it_would_evict": Case(
        _lowest_priority_before_fewest,
        [("low-a", "agent-00", "urgent"), ("low-b", "agent-00", "urgent")],
    ),
    "the_agent_needing_the_fewest_victims_wins_among_equal_priorities": Case(
        _fewest_victims, [("big-0", "agent-01", "urgent")]
    ),
    "among_equal_priorities_the_largest_victim_goes_first": Case(
        _largest_first_among_equals, [("three", "a", "urgent")]
    ),
    "a_victim_whose_room_is_not_needed_after_all_is_spared": Case(
        _reprieve, [("higher", "a", "urgent")]
    ),
    "equal_priorities_evict_nothing": Case(_equal_priorities, []),
    "a_task_unresolvable_everywhere_triggers_no_preemption": Case(_unresolvable_everywhere, []),
    "a_task_over_its_owners_quota_triggers_no_preemption": Case(_over_quota, []),
    "two_waiting_tasks_never_count_on_the_same_victim": Case(
        _victims_are_not_shared,
        [("low-0", "agent-00", "first"), ("low-1", "agent-01", "second")],
    ),
    "room_an_earlier_preemption_left_over_is_held_without_a_new_victim": Case(
        _room_left_by_an_earlier_preemption, [("low", "agent-00", "first")]
    ),
    "a_host_port_in_use_is_not_freed_by_preemption": Case(_host_port_held, []),
    "a_gang_member_triggers_no_preemption": Case(_gang_member, []),
    "a_task_on_an_agent_missing_from_the_snapshot_is_no_victim": Case(_agent_gone, []),
    "a_group_rule_that_refuses_the_agent_triggers_no_preemption_there": Case(_group_rule, []),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_preempt(case: Case) -> None:
    h = Harness()
    case.arrange(h)
    result = h.plan()
    assert [(p.task_id, p.agent_id, p.by) for p in result.preemptions] == case.preempted
    assert check_plan(h.snapshot(), h.pending, result) == []
    assert plan_exhaustive(h.snapshot(), h.pending).preemptions == result.preemptions


def test_a_preemption_says_for_whom_and_the_task_keeps_waiting_with_the_filters_reason() -> None:
    h = Harness()
    _reprieve(h)
    result = h.plan()
    assert result.preemptions == (
        Preemption(
            "higher", "a", "urgent", Status(Code.PREEMPTED, "preempted by urgent (priority 10)")
        ),
    )
    assert result.placements == ()
    assert result.waiting == {
        "urgent": Status(Code.UNSCHEDULABLE, "0/1 agents fit: 1 insufficient cpus")
    }


def test_a_snapshot_that_does_not_allow_preemption_gets_none() -> None:
    h = Harness()
    _lowest_priority_before_fewest(h)
    h.preemption = False
    result = h.plan()
    assert result.preemptions == ()
    assert list(result.waiting) == ["urgent"]


def test_nothing_placed_means_no_preemption_stage() -> None:
    h = Harness()
    h.add_agents(1, cpus=1)
    h.add_task("urgent", cpus=2, priority=10)
    assert h.plan().preemptions == ()
