"""Reasons: every task left waiting says why, in words a user can act on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from corral.scheduler import (
    Code,
    Constraint,
    Operator,
    Resources,
    Snapshot,
    TaskRequest,
    plan,
    plan_exhaustive,
)
from corral.scheduler.harness import Harness, quota


def test_reasons_tally_the_agents_by_the_first_check_they_fail() -> None:
    h = Harness()
    h.add_agents(3, prefix="small", cpus=1, drivers=("docker",))
    h.add_agent("tiny-mem", cpus=4, mem=512, drivers=("docker",))
    h.add_agent("no-docker", cpus=8)
    h.add_task("t", cpus=2, mem=1024, driver="docker")
    assert h.plan().unplaced == {
        "t": "0/5 agents fit: 3 insufficient cpus, 1 insufficient mem, 1 no driver docker"
    }


@pytest.mark.parametrize(
    ("constraint", "reason"),
    [
        (Constraint("rack", Operator.LIKE, "b"), "0/2 agents fit: 2 rack not LIKE b"),
        (Constraint("rack", Operator.UNLIKE, "a"), "0/2 agents fit: 2 rack matches UNLIKE a"),
        (Constraint("rack", Operator.CLUSTER, "b"), "0/2 agents fit: 2 CLUSTER rack b"),
        (Constraint("gpu", Operator.UNIQUE), "0/2 agents fit: 2 missing attribute gpu"),
    ],
    ids=[
        "like_names_the_field_and_pattern",
        "unlike_names_the_field_and_pattern",
        "cluster_names_the_field_and_value",
        "a_missing_attribute_is_named",
    ],
)
def test_constraint_reasons(constraint: Constraint, reason: str) -> None:
    h = Harness()
    h.add_agents(2, rack="a")
    h.add_task("t", constraints=[constraint])
    assert h.plan().unplaced == {"t": reason}


def test_a_group_constraint_names_itself_once_its_values_are_used_up() -> None:
    h = Harness()
    h.add_agents(2, cpus=4)
    h.add_agent("down", schedulable=False)
    h.add_tasks(3, constraints=[Constraint("hostname", Operator.UNIQUE)])
    result = h.plan()
    assert result.unplaced == {"g-2": "0/3 agents fit: 2 UNIQUE hostname taken, 1 not schedulable"}


def test_every_identical_task_that_waits_gets_the_reason() -> None:
    h = Harness()
    h.add_agents(1, cpus=2)
    h.add_tasks(5)
    result = h.plan()
    assert list(result.unplaced) == ["g-2", "g-3", "g-4"]
    assert set(result.unplaced.values()) == {"0/1 agents fit: 1 insufficient cpus"}


def test_an_empty_cluster_says_it_has_no_agents() -> None:
    h = Harness()
    h.add_task("t")
    assert h.plan().unplaced == {"t": "0/0 agents fit: the cluster has no agents"}


def test_an_invalid_constraint_is_a_reason_not_a_crash() -> None:
    h = Harness()
    h.add_agents(1)
    h.add_task("bad", constraints=[Constraint("rack", Operator.LIKE, "(")])
    h.add_task("good")
    result = h.plan()
    assert [p.task_id for p in result.placements] == ["good"]
    assert result.unplaced["bad"].startswith("invalid constraint 'rack LIKE (':")


def test_negative_resources_are_a_reason_not_an_over_commit() -> None:
    snapshot = Snapshot(agents=Harness().snapshot().agents)
    task = TaskRequest("t", "g", Resources(-1000, 0))
    assert plan(snapshot, [task]).unplaced == {"t": "invalid request: negative resources"}


def test_a_pending_task_that_is_already_placed_is_not_placed_twice() -> None:
    h = Harness()
    h.add_agents(2)
    h.add_placed("t", "agent-01")
    h.add_task("t")
    result = h.plan()
    assert result.placements == ()
    assert result.unplaced == {"t": "already placed on agent agent-01"}


def test_a_reason_follows_the_cluster_as_the_plan_fills_it() -> None:
    h = Harness()
    h.add_agent("a1", cpus=2, mem=1024)
    h.add_task("t0", group="t0", cpus=1, mem=2048)  # too much mem
    h.add_task("x", group="x", cpus=2)  # takes every cpu
    h.add_task("t1", group="t1", cpus=1, mem=2048)  # alike t0, once a1 has no cpu left either
    assert h.plan().unplaced == {
        "t0": "0/1 agents fit: 1 insufficient mem",
        "t1": "0/1 agents fit: 1 insufficient cpus",
    }


def _everyone_refuses_for_good(h: Harness) -> None:
    h.add_agent("no-docker")
    h.add_agent("draining", schedulable=False)
    h.add_task("t", driver="docker")


def _one_agent_is_only_full(h: Harness) -> None:
    h.add_agent("no-docker")
    h.add_agent("full", cpus=1, drivers=("docker",))
    h.add_task("t", cpus=2, driver="docker")


def _group_rule_refuses(h: Harness) -> None:
    h.add_agent("a")
    h.add_placed("sibling", "a")
    h.add_task("t", constraints=[Constraint("hostname", Operator.UNIQUE)])


def _over_quota(h: Harness) -> None:
    h.add_agent("a")
    h.add_task("t", owner="alice")
    h.quotas = {"alice": quota(cpus=0, mem=0)}


def _bad_constraint(h: Harness) -> None:
    h.add_agent("a")
    h.add_task("t", constraints=[Constraint("rack", Operator.MAX_PER, "x")])


def _no_agents(h: Harness) -> None:
    h.add_task("t")


@pytest.mark.parametrize(
    ("arrange", "code"),
    [
        (_everyone_refuses_for_good, Code.UNRESOLVABLE),
        (_one_agent_is_only_full, Code.UNSCHEDULABLE),
        (_group_rule_refuses, Code.UNSCHEDULABLE),
        (_over_quota, Code.UNSCHEDULABLE),
        (_bad_constraint, Code.UNRESOLVABLE),
        (_no_agents, Code.UNSCHEDULABLE),
    ],
    ids=[
        "a_task_every_agent_refuses_for_good_is_unresolvable",
        "one_agent_merely_full_makes_it_unschedulable",
        "a_group_rule_may_let_go_later_so_it_is_unschedulable",
        "a_quota_may_free_up_so_it_is_unschedulable",
        "a_malformed_request_is_unresolvable",
        "an_empty_cluster_may_get_agents_so_it_is_unschedulable",
    ],
)
def test_a_waiting_task_keeps_its_code(arrange: Callable[[Harness], None], code: Code) -> None:
    h = Harness()
    arrange(h)
    result = h.plan()
    assert result.waiting["t"].code is code
    assert plan_exhaustive(h.snapshot(), h.pending).waiting["t"].code is code


def test_the_words_alone_are_there_for_callers_that_only_show_them() -> None:
    h = Harness()
    _everyone_refuses_for_good(h)
    assert h.plan().unplaced == {"t": "0/2 agents fit: 1 no driver docker, 1 not schedulable"}
