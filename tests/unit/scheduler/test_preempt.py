"""Preempt: a user below their fair share, whose task waited long enough and fits nowhere,
names the tasks of users over their share that would make room for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from corral.scheduler import Code, Constraint, Operator, Preemption, Status, plan_exhaustive
from corral.scheduler.harness import Harness, check_plan, quota, res


@dataclass(frozen=True)
class Case:
    """A cluster arranged by ``arrange``; the preemptions as (victim, agent, for whom)."""

    arrange: Callable[[Harness], object]
    preempted: list[tuple[str, str, str]]


def _full_of_alice(h: Harness, cpus: float = 4, tasks: int = 4, priority: int = 0) -> None:
    """One agent of ``cpus`` full of alice's ``tasks`` alike tasks a-0, a-1..."""
    h.add_agents(1, cpus=cpus)
    for i in range(tasks):
        h.add_placed(f"a-{i}", "agent-00", owner="alice", cpus=cpus / tasks, priority=priority)


def _starved(h: Harness) -> None:
    _full_of_alice(h)
    h.add_task("b", owner="bob", cpus=1)


def _two_starved(h: Harness) -> None:
    _full_of_alice(h)
    h.add_task("b-0", owner="bob", cpus=1)
    h.add_task("b-1", owner="bob", cpus=1)
    h.add_task("b-2", owner="bob", cpus=1)  # bob would hold 3 of 4: over his half


def _not_waited_long_enough(h: Harness) -> None:
    _starved(h)
    h.now, h.preempt_after = 100.0, 60.0
    h.pending[0] = replace(h.pending[0], waiting_since=41.0)


def _waited_just_long_enough(h: Harness) -> None:
    _starved(h)
    h.now, h.preempt_after = 100.0, 60.0
    h.pending[0] = replace(h.pending[0], waiting_since=40.0)


def _at_their_share(h: Harness) -> None:
    h.add_agents(2, cpus=4)
    h.add_placed("a", "agent-00", owner="alice", cpus=4)
    h.add_placed("b-old", "agent-01", owner="bob", cpus=4)
    h.add_task("b", owner="bob", cpus=1)


def _only_over_share_owners(h: Harness) -> None:
    h.add_agents(1, cpus=8)
    h.add_placed("a-0", "agent-00", owner="alice", cpus=1, priority=0)  # below her third
    h.add_placed("a-1", "agent-00", owner="alice", cpus=1, priority=0)
    for i in range(6):
        h.add_placed(f"c-{i}", "agent-00", owner="carol", cpus=1, priority=1)
    h.add_task("b", owner="bob", cpus=1, priority=1)


def _higher_priority_victims(h: Harness) -> None:
    _full_of_alice(h, priority=5)
    h.add_task("b", owner="bob", cpus=1, priority=0)


def _one_slot(h: Harness) -> None:
    _full_of_alice(h, cpus=1, tasks=1)
    h.add_task("b", owner="bob", cpus=1)


def _weights(h: Harness) -> None:
    _full_of_alice(h)
    h.weights = {"alice": 3.0}
    h.add_task("b-0", owner="bob", cpus=1)
    h.add_task("b-1", owner="bob", cpus=1)


def _past(h: Harness) -> None:
    _starved(h)
    h.past = {"bob": h.agents[0].total}  # bob held the whole cluster lately


def _not_preemptible(h: Harness) -> None:
    h.add_agents(1, cpus=4)
    for i in range(4):
        h.add_placed(f"svc-{i}", "agent-00", owner="alice", cpus=1, preemptible=False)
    h.add_task("b", owner="bob", cpus=1)


def _stopping(h: Harness) -> None:
    h.add_agents(1, cpus=4)
    h.add_placed("a-0", "agent-00", owner="alice", cpus=1, stopping=True)
    for i in range(1, 4):
        h.add_placed(f"a-{i}", "agent-00", owner="alice", cpus=1)
    h.add_task("b-0", owner="bob", cpus=1)
    h.add_task("b-1", owner="bob", cpus=1)


def _lowest_share_first(h: Harness) -> None:
    h.add_agents(1, cpus=6)
    for i in range(5):
        h.add_placed(f"a-{i}", "agent-00", owner="alice", cpus=1)
    h.add_placed("b-old", "agent-00", owner="bob", cpus=1)
    h.add_task("b", owner="bob", cpus=1)
    h.add_task("c", owner="carol", cpus=1)  # holds nothing: goes first


def _lowest_priority_before_fewest(h: Harness) -> None:
    h.add_agents(2, cpus=4)
    h.add_placed("low-a", "agent-00", owner="alice", cpus=2, priority=1)
    h.add_placed("low-b", "agent-00", owner="alice", cpus=2, priority=1)
    h.add_placed("mid", "agent-01", owner="alice", cpus=4, priority=5)
    h.add_task("urgent", owner="bob", cpus=4, priority=10)


def _fewest_victims(h: Harness) -> None:
    h.add_agents(2, cpus=4)
    for i in range(4):
        h.add_placed(f"small-{i}", "agent-00", owner="alice", cpus=1, priority=1)
    h.add_placed("big-0", "agent-01", owner="alice", cpus=2, priority=1)
    h.add_placed("big-1", "agent-01", owner="alice", cpus=2, priority=1)
    h.add_task("urgent", owner="bob", cpus=2, priority=10)


def _largest_first_among_equals(h: Harness) -> None:
    h.add_agent("a", cpus=8)
    h.add_placed("one", "a", owner="alice", cpus=1)
    h.add_placed("three", "a", owner="alice", cpus=3)
    h.add_placed("four", "a", owner="alice", cpus=4, priority=1)
    h.add_task("urgent", owner="bob", cpus=3, priority=1)


def _reprieve(h: Harness) -> None:
    h.add_agent("a", cpus=8)
    h.add_placed("lowest", "a", owner="alice", cpus=1, priority=1)  # taken, then not needed
    h.add_placed("higher", "a", owner="alice", cpus=3, priority=2)
    h.add_placed("top", "a", owner="alice", cpus=4, priority=3)
    h.add_task("urgent", owner="bob", cpus=3, priority=10)


def _unresolvable_everywhere(h: Harness) -> None:
    _full_of_alice(h)
    h.add_task("docker-only", owner="bob", cpus=1, driver="docker")


def _over_quota(h: Harness) -> None:
    _starved(h)
    h.quotas = {"bob": quota(cpus=0.5)}


def _victims_are_not_shared(h: Harness) -> None:
    h.add_agents(3, cpus=4)
    for agent in range(3):
        h.add_placed(f"a-{agent}", f"agent-{agent:02d}", owner="alice", cpus=4)
    h.add_task("b", group="b", owner="bob", cpus=4)
    h.add_task("c", group="c", owner="carol", cpus=4)
    h.add_task("d", group="d", owner="dave", cpus=4)  # alice would drop below dave


def _host_port_held(h: Harness) -> None:
    h.add_agents(1, cpus=4)
    h.add_placed("a", "agent-00", owner="alice", cpus=4, host_ports=[80])
    h.add_task("web", owner="bob", cpus=1, host_ports=[80])


def _gang_member(h: Harness) -> None:
    _full_of_alice(h)
    h.add_tasks(2, group="mpi", owner="bob", cpus=1, gang="mpi")


def _agent_gone(h: Harness) -> None:
    h.add_agents(1, cpus=4, mem=1024)
    h.add_placed("elsewhere", "gone", owner="alice", cpus=4)  # its agent left the snapshot
    h.add_task("b", owner="bob", cpus=1, mem=2048)


def _group_rule(h: Harness) -> None:
    h.add_agents(1, cpus=4)
    h.add_placed("sibling", "agent-00", group="web", owner="bob", cpus=1)
    for i in range(3):
        h.add_placed(f"a-{i}", "agent-00", group="batch", owner="alice", cpus=1)
    unique = Constraint("hostname", Operator.UNIQUE)
    h.add_task("web-1", group="web", owner="bob", cpus=1, constraints=[unique])


CASES = {
    "a_starved_user_evicts_one_task_of_the_user_holding_the_cluster": Case(
        _starved, [("a-0", "agent-00", "b")]
    ),
    "a_starved_user_evicts_up_to_their_share_and_no_further": Case(
        _two_starved, [("a-0", "agent-00", "b-0"), ("a-1", "agent-00", "b-1")]
    ),
    "a_task_that_has_not_waited_the_threshold_evicts_nothing": Case(_not_waited_long_enough, []),
    "a_task_that_has_waited_the_threshold_evicts": Case(
        _waited_just_long_enough, [("a-0", "agent-00", "b")]
    ),
    "a_user_at_their_share_evicts_nothing": Case(_at_their_share, []),
    "only_tasks_of_users_over_their_share_are_victims_whatever_their_priority": Case(
        _only_over_share_owners, [("c-0", "agent-00", "b")]
    ),
    "a_task_of_a_higher_priority_than_the_starved_one_is_no_victim": Case(
        _higher_priority_victims, []
    ),
    "no_eviction_that_would_leave_its_owner_below_the_preemptor": Case(_one_slot, []),
    "with_weights_3_to_1_the_starved_user_evicts_a_quarter_of_the_cluster": Case(
        _weights, [("a-0", "agent-00", "b-0")]
    ),
    "a_user_whose_decayed_past_fills_their_share_evicts_nothing": Case(_past, []),
    "a_task_not_preemptible_is_no_victim": Case(_not_preemptible, []),
    "room_being_made_by_a_task_stopping_is_taken_before_a_new_victim": Case(
        _stopping, [("a-1", "agent-00", "b-1")]
    ),
    "the_user_lowest_in_share_evicts_first": Case(
        _lowest_share_first, [("a-0", "agent-00", "c"), ("a-1", "agent-00", "b")]
    ),
    "the_lowest_priorities_go_before_the_fewest_victims": Case(
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
    "a_task_unresolvable_everywhere_triggers_no_preemption": Case(_unresolvable_everywhere, []),
    "a_task_over_its_owners_quota_triggers_no_preemption": Case(_over_quota, []),
    "two_waiting_tasks_never_count_on_the_same_victim": Case(
        _victims_are_not_shared,
        [("a-0", "agent-00", "b"), ("a-1", "agent-01", "c")],
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


def test_a_preemption_says_who_preempted_for_whom_and_why_and_the_task_keeps_waiting() -> None:
    h = Harness()
    _starved(h)
    h.now, h.preempt_after = 75.4, 60.0
    result = h.plan()
    why = "preempted by task b of user bob: bob below share, waited 75 s"
    assert result.preemptions == (Preemption("a-0", "agent-00", "b", Status(Code.PREEMPTED, why)),)
    assert result.placements == ()
    assert result.waiting == {
        "b": Status(Code.UNSCHEDULABLE, "0/1 agents fit: 1 insufficient cpus")
    }


def test_a_snapshot_that_does_not_allow_preemption_gets_none() -> None:
    h = Harness()
    _starved(h)
    h.preemption = False
    result = h.plan()
    assert result.preemptions == ()
    assert list(result.waiting) == ["b"]


def test_nothing_placed_means_no_preemption_stage() -> None:
    h = Harness()
    h.add_agents(1, cpus=1)
    h.add_task("urgent", owner="bob", cpus=2, priority=10)
    assert h.plan().preemptions == ()


def test_once_the_victims_stopped_the_next_plan_places_the_starved_task_first() -> None:
    h = Harness()
    _starved(h)
    h.add_task("a-more", owner="alice", cpus=1)  # alice's next task waits too
    (evicted,) = h.plan().preemptions
    h.placed = [t for t in h.placed if t.task_id != evicted.task_id]
    h.agents[0] = replace(h.agents[0], used=h.agents[0].used - res(cpus=1, mem=128))
    again = h.plan()
    assert [(p.task_id, p.agent_id) for p in again.placements] == [("b", "agent-00")]
    assert again.preemptions == ()
