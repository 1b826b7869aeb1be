"""Permit: an all-or-nothing group (a gang) is placed whole, or not at all and with its reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from corral.scheduler import Code, Constraint, Operator, Plan, Status, plan_exhaustive
from corral.scheduler.harness import Harness, check_plan, where

UNIQUE_HOST = Constraint("hostname", Operator.UNIQUE)


@dataclass(frozen=True)
class Case:
    """A cluster arranged by ``arrange``; what the plan must place, and the status of the rest."""

    arrange: Callable[[Harness], object]
    placed: dict[str, str]  # task id -> agent id
    waiting: dict[str, Status] = field(default_factory=dict)


def _three_on_two(h: Harness) -> None:
    h.add_agents(2, cpus=2)
    h.add_tasks(3, group="mpi", cpus=2, gang="mpi")


def _three_on_two_then_a_later_task(h: Harness) -> None:
    _three_on_two(h)
    # The same shape, decided after the gang: its ranking saw both agents fill up.
    h.add_task("later", group="later", cpus=2)
    h.add_task("other-shape", group="other", cpus=1.5)


def _fits_whole(h: Harness) -> None:
    h.add_agents(3, cpus=2)
    h.add_tasks(3, group="mpi", cpus=2, gang="mpi", constraints=[UNIQUE_HOST])


def _unique_counts_come_back(h: Harness) -> None:
    h.add_agents(2, cpus=4)
    for i in range(3):
        h.add_task(f"rank-{i}", group="mpi", gang="mpi", constraints=[UNIQUE_HOST])
    # The same group, each placed on its own: UNIQUE sees none of the rolled-back ranks.
    for i in range(2):
        h.add_task(f"lone-{i}", group="mpi", constraints=[UNIQUE_HOST])


def _host_ports_come_back(h: Harness) -> None:
    h.add_agents(1, cpus=4)
    h.add_task("rank-0", group="mpi", gang="mpi", host_ports=[9000])
    h.add_task("rank-1", group="mpi", gang="mpi", cpus=8)
    h.add_task("web", group="web", host_ports=[9000])


def _a_member_never_fits(h: Harness) -> None:
    h.add_agents(2)
    h.add_tasks(2, group="mpi", gang="mpi")
    h.add_task("mpi-gpu", group="mpi", gang="mpi", driver="docker")


def _a_member_is_malformed(h: Harness) -> None:
    h.add_agents(2)
    h.add_task("mpi-0", group="mpi", gang="mpi")
    h.add_task(
        "mpi-1", group="mpi", gang="mpi", constraints=[Constraint("rack", Operator.LIKE, "(")]
    )


def _first_gang_fails_second_fits(h: Harness) -> None:
    h.add_agents(2, cpus=2)
    h.add_tasks(3, group="big", cpus=2, gang="big", priority=1)
    h.add_tasks(2, group="small", cpus=2, gang="small")


def _two_owners_in_turn(h: Harness) -> None:
    h.add_agents(2, cpus=2)
    h.add_tasks(2, group="a", cpus=2, gang="a", owner="alice")
    h.add_tasks(2, group="b", cpus=2, gang="b", owner="bob")


NO_ROOM = "0/2 agents fit: 2 insufficient cpus"
CASES = {
    "a_3_task_gang_on_2_fitting_agents_stays_whole_unplaced_with_its_reason": Case(
        _three_on_two,
        placed={},
        waiting={
            f"mpi-{i}": Status(
                Code.UNSCHEDULABLE,
                f"all-or-nothing group mpi of 3 tasks: mpi-2 does not fit: {NO_ROOM}",
            )
            for i in range(3)
        },
    ),
    "the_room_a_turned_down_gang_took_goes_to_the_tasks_decided_after_it": Case(
        _three_on_two_then_a_later_task,
        placed={"later": "agent-00", "other-shape": "agent-01"},
        waiting={
            f"mpi-{i}": Status(
                Code.UNSCHEDULABLE,
                f"all-or-nothing group mpi of 3 tasks: mpi-2 does not fit: {NO_ROOM}",
            )
            for i in range(3)
        },
    ),
    "a_gang_that_fits_is_placed_whole": Case(
        _fits_whole,
        placed={"mpi-0": "agent-00", "mpi-1": "agent-01", "mpi-2": "agent-02"},
    ),
    "a_turned_down_gang_gives_its_group_counts_back": Case(
        _unique_counts_come_back,
        placed={"lone-0": "agent-00", "lone-1": "agent-01"},
        waiting={
            f"rank-{i}": Status(
                Code.UNSCHEDULABLE,
                "all-or-nothing group mpi of 3 tasks: rank-2 does not fit: "
                "0/2 agents fit: 2 UNIQUE hostname taken",
            )
            for i in range(3)
        },
    ),
    "a_turned_down_gang_gives_its_host_ports_back": Case(
        _host_ports_come_back,
        placed={"web": "agent-00"},
        waiting={
            t: Status(
                Code.UNSCHEDULABLE,
                "all-or-nothing group mpi of 2 tasks: rank-1 does not fit: "
                "0/1 agents fit: 1 insufficient cpus",
            )
            for t in ("rank-0", "rank-1")
        },
    ),
    "a_member_that_fits_nowhere_ever_makes_the_whole_gang_unresolvable": Case(
        _a_member_never_fits,
        placed={},
        waiting={
            t: Status(
                Code.UNRESOLVABLE,
                "all-or-nothing group mpi of 3 tasks: mpi-gpu does not fit: "
                "0/2 agents fit: 2 no driver docker",
            )
            for t in ("mpi-0", "mpi-1", "mpi-gpu")
        },
    ),
    "a_malformed_member_keeps_the_gang_waiting_without_trying_the_others": Case(
        _a_member_is_malformed,
        placed={},
        waiting={
            t: Status(
                Code.UNRESOLVABLE,
                "all-or-nothing group mpi of 2 tasks: mpi-1 does not fit: "
                "invalid constraint 'rack LIKE (': missing ), unterminated subpattern "
                "at position 0",
            )
            for t in ("mpi-0", "mpi-1")
        },
    ),
    "a_gang_too_big_for_the_cluster_leaves_it_to_the_next_gang": Case(
        _first_gang_fails_second_fits,
        placed={"small-0": "agent-00", "small-1": "agent-01"},
        waiting={
            f"big-{i}": Status(
                Code.UNSCHEDULABLE,
                f"all-or-nothing group big of 3 tasks: big-2 does not fit: {NO_ROOM}",
            )
            for i in range(3)
        },
    ),
    "two_owners_gangs_are_each_decided_whole_in_fair_share_order": Case(
        _two_owners_in_turn,
        placed={"a-0": "agent-00", "a-1": "agent-01"},
        waiting={
            f"b-{i}": Status(
                Code.UNSCHEDULABLE,
                f"all-or-nothing group b of 2 tasks: b-0 does not fit: {NO_ROOM}",
            )
            for i in range(2)
        },
    ),
}


def check_case(case: Case) -> tuple[Plan, Plan]:
    """Plan the case: it places what the case says, gives the rest their statuses and keeps
    the invariants; the exhaustive reference places the same. Answers both plans."""
    h = Harness()
    case.arrange(h)
    result = h.plan()
    assert where(result) == case.placed
    assert result.waiting == case.waiting
    assert check_plan(h.snapshot(), h.pending, result) == []
    exhaustive = plan_exhaustive(h.snapshot(), h.pending)
    assert exhaustive.placements == result.placements
    assert exhaustive.waiting.keys() == result.waiting.keys()
    return result, exhaustive


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_permit(case: Case) -> None:
    check_case(case)


def test_tasks_without_a_gang_are_placed_one_by_one_as_before() -> None:
    h = Harness()
    h.add_agents(2, cpus=2)
    h.add_tasks(3, group="sweep", cpus=2)
    result = h.plan()
    assert len(result.placements) == 2
    assert list(result.waiting) == ["sweep-2"]
