"""Gangs of nodes: an MPI job's nodes × tasks per node go on distinct agents, each with room for
all the ranks of its node, placed whole or not at all and with a reason that says how many fit."""

from __future__ import annotations

import pytest

from corral.scheduler import Code, Status, Strategy
from corral.scheduler.harness import Harness, check_plan, quota
from tests.unit.scheduler.test_permit import Case, check_case


def _three_nodes_of_two(h: Harness) -> None:
    h.add_agents(3, cpus=2)
    h.add_tasks(6, group="mpi", cpus=1, gang="mpi", tasks_per_node=2)


def _four_nodes_room_for_three(h: Harness) -> None:
    h.add_agents(4, cpus=2)
    h.add_placed("busy", "agent-03", cpus=2)
    h.add_tasks(4, group="mpi", cpus=2, gang="mpi", tasks_per_node=1)
    h.add_task("later", group="later", cpus=2)


def _two_nodes_one_big_agent(h: Harness) -> None:
    h.add_agents(1, cpus=8)
    h.add_tasks(2, group="mpi", cpus=1, gang="mpi", tasks_per_node=1)


def _room_for_one_rank_of_two(h: Harness) -> None:
    h.add_agents(2, cpus=3)
    h.add_tasks(4, group="mpi", cpus=2, gang="mpi", tasks_per_node=2)


def _binpack_fills_used_agents(h: Harness) -> None:
    h.add_agents(4, cpus=4)
    h.add_placed("a", "agent-01", cpus=2)
    h.add_placed("b", "agent-03", cpus=2)
    h.add_tasks(2, group="mpi", cpus=2, gang="mpi", tasks_per_node=1)


def _spread_takes_empty_agents(h: Harness) -> None:
    h.add_agents(4, cpus=4)
    h.add_placed("a", "agent-00", cpus=2)
    h.add_placed("b", "agent-01", cpus=2)
    for i in range(2):
        h.add_task(
            f"mpi-{i}", group="mpi", cpus=1, gang="mpi", gang_node=i, strategy=Strategy.SPREAD
        )


def _a_member_missing(h: Harness) -> None:
    h.add_agents(4)
    for i in range(3):
        h.add_task(f"mpi-{i}", group="mpi", gang="mpi", gang_node=i, gang_size=4)


def _over_quota(h: Harness) -> None:
    h.add_agents(4, cpus=4)
    h.quotas["alice"] = quota(cpus=3)
    h.add_tasks(4, group="mpi", cpus=1, gang="mpi", tasks_per_node=1, owner="alice")


def _draining_agents_do_not_count(h: Harness) -> None:
    h.add_agents(2, cpus=2)
    h.add_agent("drained", cpus=2, schedulable=False)
    h.add_tasks(3, group="mpi", cpus=1, gang="mpi", tasks_per_node=1)


def _wait(reason: str, *ids: str, code: Code = Code.UNSCHEDULABLE) -> dict[str, Status]:
    return {i: Status(code, reason) for i in ids}


MPI4 = ("mpi-0", "mpi-1", "mpi-2", "mpi-3")
CASES = {
    "each_node_s_ranks_share_an_agent_and_every_node_has_its_own": Case(
        _three_nodes_of_two,
        placed={
            "mpi-0": "agent-00",
            "mpi-1": "agent-00",
            "mpi-2": "agent-01",
            "mpi-3": "agent-01",
            "mpi-4": "agent-02",
            "mpi-5": "agent-02",
        },
    ),
    "a_gang_of_4_nodes_where_3_fit_waits_whole_saying_so_and_its_room_goes_on": Case(
        _four_nodes_room_for_three,
        placed={"later": "agent-00"},
        waiting=_wait("gang of 4 nodes: 3 fit (1 insufficient cpus)", *MPI4),
    ),
    "two_nodes_never_share_an_agent_however_big": Case(
        _two_nodes_one_big_agent,
        placed={},
        waiting=_wait("gang of 2 nodes: 1 fit", "mpi-0", "mpi-1", code=Code.UNRESOLVABLE),
    ),
    "an_agent_with_room_for_one_rank_of_a_node_of_two_does_not_count": Case(
        _room_for_one_rank_of_two,
        placed={},
        waiting=_wait(
            "gang of 2 nodes × 2 tasks: 0 fit (2 insufficient cpus)", *MPI4, code=Code.UNRESOLVABLE
        ),
    ),
    "binpack_puts_the_nodes_on_the_fullest_agents": Case(
        _binpack_fills_used_agents, placed={"mpi-0": "agent-01", "mpi-1": "agent-03"}
    ),
    "spread_puts_the_nodes_on_the_emptiest_agents": Case(
        _spread_takes_empty_agents, placed={"mpi-0": "agent-02", "mpi-1": "agent-03"}
    ),
    "a_gang_with_a_member_missing_waits_whole": Case(
        _a_member_missing,
        placed={},
        waiting=_wait("gang mpi: 3 of its 4 tasks are pending", "mpi-0", "mpi-1", "mpi-2"),
    ),
    "a_gang_over_its_owner_s_quota_waits_whole": Case(
        _over_quota,
        placed={},
        waiting=_wait("gang mpi: quota: user alice at 0/3 cpus", *MPI4),
    ),
    "a_draining_agent_is_not_counted_as_fitting": Case(
        _draining_agents_do_not_count,
        placed={},
        waiting=_wait(
            "gang of 3 nodes: 2 fit (1 not schedulable)",
            "mpi-0",
            "mpi-1",
            "mpi-2",
            code=Code.UNRESOLVABLE,
        ),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_gang_of_nodes(case: Case) -> None:
    result, exhaustive = check_case(case)
    assert exhaustive.waiting == result.waiting  # a gang's reason is found the same way


def test_a_gang_of_nodes_placed_in_part_or_on_shared_agents_breaks_the_invariants() -> None:
    h = Harness()
    h.add_agents(2)
    h.add_tasks(4, group="mpi", gang="mpi", tasks_per_node=2)
    good = h.plan()
    assert check_plan(h.snapshot(), h.pending, good) == []
    bad = type(good)(
        tuple(p.__class__(p.task_id, "agent-00") for p in good.placements), good.waiting
    )
    errors = check_plan(h.snapshot(), h.pending, bad)
    assert any("has nodes 0 and 1 on agent-00" in e for e in errors), errors
