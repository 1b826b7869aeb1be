"""The checks one by one: each answers with a Status carrying a fixed reason, never a bare bool."""

from __future__ import annotations

import pytest

from corral.scheduler import AgentSnapshot, Constraint, Operator, Quota, Resources, TaskRequest
from corral.scheduler.feasibility import (
    InvalidConstraint,
    check_counted_rule,
    check_driver,
    check_group_by,
    check_host_ports,
    check_privilege,
    check_quota,
    check_resources,
    check_schedulable,
    check_static,
    check_static_rule,
    check_volumes,
    compile_rule,
    field_value,
    invalid_host_ports,
)
from corral.scheduler.harness import res
from corral.scheduler.model import FITS, Code, Status


def agent(**attributes: str) -> AgentSnapshot:
    return AgentSnapshot(
        "a1", "host1", Resources(4000, 4096), Resources(), attributes, frozenset({"process"})
    )


@pytest.mark.parametrize(
    ("request_", "free", "expected"),
    [
        pytest.param(Resources(1000, 512), Resources(1000, 512), FITS, id="exact_fit_fits"),
        pytest.param(
            Resources(1001, 512),
            Resources(1000, 4096),
            Status(Code.UNSCHEDULABLE, "insufficient cpus"),
            id="one_millicpu_too_many_is_insufficient_cpus",
        ),
        pytest.param(
            Resources(1000, 513),
            Resources(1000, 512),
            Status(Code.UNSCHEDULABLE, "insufficient mem"),
            id="one_mib_too_many_is_insufficient_mem",
        ),
        pytest.param(
            Resources(0, 0, 1),
            Resources(),
            Status(Code.UNSCHEDULABLE, "insufficient disk"),
            id="disk_is_checked",
        ),
        pytest.param(
            Resources(0, 0, 0, 1),
            Resources(),
            Status(Code.UNSCHEDULABLE, "insufficient gpus"),
            id="gpus_are_checked",
        ),
        pytest.param(
            Resources(9000, 9000),
            Resources(),
            Status(Code.UNSCHEDULABLE, "insufficient cpus"),
            id="the_first_insufficient_resource_is_named",
        ),
    ],
)
def test_check_resources(request_: Resources, free: Resources, expected: Status) -> None:
    assert check_resources(request_, free) == expected


def test_a_draining_agent_is_unresolvably_not_schedulable() -> None:
    status = check_schedulable(AgentSnapshot("a", "a", Resources(), Resources(), schedulable=False))
    assert status == Status(Code.UNRESOLVABLE, "not schedulable")
    assert not status.fits


def test_a_missing_driver_is_named_in_the_reason() -> None:
    assert check_driver("docker", agent()) == Status(Code.UNRESOLVABLE, "no driver docker")
    assert check_driver("process", agent()).fits


@pytest.mark.parametrize(
    ("field", "expected"),
    [("hostname", "host1"), ("agent", "a1"), ("id", "a1"), ("rack", "r1"), ("gpu", None)],
    ids=[
        "hostname_is_the_agent_hostname",
        "agent_is_the_agent_id",
        "id_is_the_agent_id",
        "any_other_field_is_an_attribute",
        "a_missing_attribute_is_none",
    ],
)
def test_field_value(field: str, expected: str | None) -> None:
    assert field_value(agent(rack="r1"), field) == expected


@pytest.mark.parametrize(
    ("constraint", "value", "reason"),
    [
        (Constraint("rack", Operator.LIKE, "r[12]"), "r1", ""),
        (Constraint("rack", Operator.LIKE, "r[12]"), "r12", "rack not LIKE r[12]"),
        (Constraint("rack", Operator.LIKE, "r"), None, "missing attribute rack"),
        (Constraint("rack", Operator.UNLIKE, "r1"), "r1", "rack matches UNLIKE r1"),
        (Constraint("rack", Operator.UNLIKE, "r1"), "r10", ""),
        (Constraint("rack", Operator.UNLIKE, "r1"), None, ""),
        (Constraint("rack", Operator.CLUSTER, "r1"), "r2", "CLUSTER rack r1"),
        (Constraint("rack", Operator.UNIQUE), None, "missing attribute rack"),
        (Constraint("rack", Operator.MAX_PER, "2"), None, "missing attribute rack"),
        (Constraint("rack", Operator.GROUP_BY), None, "missing attribute rack"),
        (Constraint("rack", Operator.UNIQUE), "r1", ""),
    ],
    ids=[
        "like_fits_a_full_match",
        "like_refuses_a_partial_match",
        "like_refuses_a_missing_attribute",
        "unlike_refuses_a_full_match",
        "unlike_fits_a_partial_match",
        "unlike_fits_a_missing_attribute",
        "cluster_with_a_value_refuses_another_value",
        "unique_refuses_a_missing_attribute",
        "max_per_refuses_a_missing_attribute",
        "group_by_refuses_a_missing_attribute",
        "counted_rules_leave_a_present_attribute_to_the_counted_check",
    ],
)
def test_check_static_rule(constraint: Constraint, value: str | None, reason: str) -> None:
    status = check_static_rule(compile_rule(constraint), value)
    assert status.reason == reason
    assert status.fits == (reason == "")


@pytest.mark.parametrize(
    ("constraint", "value", "counts", "reason"),
    [
        (Constraint("h", Operator.UNIQUE), "x", {}, ""),
        (Constraint("h", Operator.UNIQUE), "x", {"x": 1}, "UNIQUE h taken"),
        (Constraint("h", Operator.UNIQUE), "y", {"x": 1}, ""),
        (Constraint("h", Operator.MAX_PER, "2"), "x", {"x": 1}, ""),
        (Constraint("h", Operator.MAX_PER, "2"), "x", {"x": 2}, "MAX_PER h 2 reached"),
        (Constraint("h", Operator.CLUSTER), "x", {}, ""),
        (Constraint("h", Operator.CLUSTER), "x", {"x": 3}, ""),
        (Constraint("h", Operator.CLUSTER), "y", {"x": 3}, "CLUSTER h"),
        (Constraint("h", Operator.CLUSTER), "x", {"x": 1, "y": 1}, "CLUSTER h"),
    ],
    ids=[
        "unique_fits_an_unused_value",
        "unique_refuses_a_used_value",
        "unique_fits_another_value",
        "max_per_fits_below_n",
        "max_per_refuses_at_n",
        "cluster_lets_the_first_task_choose",
        "cluster_fits_the_chosen_value",
        "cluster_refuses_another_value",
        "cluster_refuses_everything_once_the_group_spans_two_values",
    ],
)
def test_check_counted_rule(
    constraint: Constraint, value: str, counts: dict[str, int], reason: str
) -> None:
    assert check_counted_rule(compile_rule(constraint), value, counts).reason == reason


@pytest.mark.parametrize(
    ("n", "value", "counts", "floor", "reason"),
    [
        (None, "a", {}, 0, ""),
        (None, "a", {"a": 1}, 0, "GROUP_BY rack uneven"),
        (None, "a", {"a": 1, "b": 1}, 1, ""),
        ("3", "a", {"a": 1, "b": 1}, 1, "GROUP_BY rack 3: too few values"),
        ("2", "a", {"a": 1, "b": 1}, 1, ""),
    ],
    ids=[
        "group_by_fits_a_value_at_the_floor",
        "group_by_refuses_a_value_above_the_floor",
        "group_by_fits_any_value_once_all_are_level",
        "group_by_n_refuses_doubling_up_with_fewer_than_n_values_in_use",
        "group_by_n_allows_doubling_up_with_n_values_in_use",
    ],
)
def test_check_group_by(
    n: str | None, value: str, counts: dict[str, int], floor: int, reason: str
) -> None:
    rule = compile_rule(Constraint("rack", Operator.GROUP_BY, n))
    assert check_group_by(rule, value, counts, floor).reason == reason


def test_check_static_reports_the_first_failing_check_in_chain_order() -> None:
    task = TaskRequest("t", "g", Resources(), driver="docker")
    rules = (compile_rule(Constraint("rack", Operator.LIKE, "x")),)
    assert check_static(task, rules, agent(rack="y")).reason == "no driver docker"


@pytest.mark.parametrize(
    ("usage", "tasks", "quota", "reason"),
    [
        (Resources(1000, 100), 1, Quota(2000, 200, 0, 2), ""),
        (Resources(1500, 100), 1, Quota(2000, 200), "quota: user alice at 1.5/2 cpus"),
        (
            Resources(1500, 150),
            1,
            Quota(2000, 200),
            "quota: user alice at 1.5/2 cpus, 150/200 MiB mem",
        ),
        (Resources(1000, 100), 2, Quota(tasks=2), "quota: user alice at 2/2 tasks"),
        (Resources(10**9, 10**9), 10**6, Quota(), ""),
    ],
    ids=[
        "within_quota_fits",
        "over_on_cpus_names_cpus_and_where_the_user_stands",
        "over_on_two_resources_names_both",
        "the_running_tasks_cap_counts_tasks",
        "no_cap_given_caps_nothing",
    ],
)
def test_check_quota(usage: Resources, tasks: int, quota: Quota, reason: str) -> None:
    status = check_quota("user alice", Resources(1000, 100), 1, usage, tasks, quota)
    assert status.reason == reason


@pytest.mark.parametrize(
    "constraint",
    [
        Constraint("rack", Operator.LIKE),
        Constraint("rack", Operator.UNLIKE, "("),
        Constraint("rack", Operator.MAX_PER),
        Constraint("rack", Operator.MAX_PER, "0"),
        Constraint("rack", Operator.MAX_PER, "two"),
        Constraint("rack", Operator.GROUP_BY, "-1"),
        Constraint("", Operator.UNIQUE),
        Constraint("rack", "NEAR", "a"),  # type: ignore[arg-type]
    ],
    ids=[
        "like_without_a_pattern",
        "unlike_with_a_broken_pattern",
        "max_per_without_n",
        "max_per_zero",
        "max_per_not_a_number",
        "group_by_negative",
        "empty_field",
        "unknown_operator",
    ],
)
def test_invalid_constraints_are_refused_with_a_message(constraint: Constraint) -> None:
    with pytest.raises(InvalidConstraint, match="invalid constraint"):
        compile_rule(constraint)


@pytest.mark.parametrize(
    ("paths", "roots", "fits"),
    [
        ((), (), True),
        (("/data/in",), ("/data",), True),
        (("/data",), ("/data",), True),
        (("/data2/in",), ("/data",), False),
        (("/data/in", "/scratch/out"), ("/data",), False),
        (("/data/in", "/scratch/out"), ("/data", "/scratch"), True),
        (("/etc",), ("/",), True),
        (("/etc",), (), False),
    ],
)
def test_volumes_must_lie_under_an_allowed_root_by_whole_path_components(
    paths: tuple[str, ...], roots: tuple[str, ...], fits: bool
) -> None:
    agent = AgentSnapshot("a", "a", res(4, 4096), res(0, 0), volume_roots=roots)
    assert check_volumes(paths, agent).fits is fits


def test_privileged_tasks_only_go_to_agents_that_allow_them() -> None:
    strict = AgentSnapshot("a", "a", res(4, 4096), res(0, 0))
    lax = AgentSnapshot("b", "b", res(4, 4096), res(0, 0), privileged=True)
    assert not check_privilege(True, strict).fits
    assert check_privilege(True, lax).fits
    assert check_privilege(False, strict).fits


@pytest.mark.parametrize(
    ("host_ports", "taken", "expected"),
    [
        ((), frozenset(), FITS),
        ((), frozenset({8080}), FITS),
        ((8080,), frozenset(), FITS),
        ((8080,), frozenset({9090}), FITS),
        ((8080,), frozenset({8080}), Status(Code.UNSCHEDULABLE, "host port in use")),
        ((80, 443), frozenset({443}), Status(Code.UNSCHEDULABLE, "host port in use")),
        ((80, 443), {80, 443}, Status(Code.UNSCHEDULABLE, "host port in use")),
    ],
    ids=[
        "a_task_without_host_ports_fits_an_agent_without_ports_in_use",
        "a_task_without_host_ports_fits_whatever_ports_are_in_use",
        "a_free_port_fits",
        "another_port_in_use_does_not_matter",
        "a_port_in_use_may_fit_later_once_its_holder_ends",
        "one_port_in_use_of_several_is_enough_to_refuse",
        "a_plain_set_of_taken_ports_works_too",
    ],
)
def test_check_host_ports(
    host_ports: tuple[int, ...], taken: frozenset[int] | set[int], expected: Status
) -> None:
    assert check_host_ports(host_ports, taken) == expected


@pytest.mark.parametrize(
    ("host_ports", "reason"),
    [
        ((), None),
        ((1, 8080, 65535), None),
        ((0,), "invalid request: host port outside 1..65535"),
        ((-80,), "invalid request: host port outside 1..65535"),
        ((65536,), "invalid request: host port outside 1..65535"),
        ((53, 53), None),
    ],
    ids=[
        "no_ports_are_sound",
        "ports_from_1_to_65535_are_sound",
        "port_zero_means_any_port_and_is_not_an_exact_one",
        "a_negative_port_is_invalid",
        "a_port_above_65535_is_invalid",
        "a_port_listed_twice_as_for_tcp_and_udp_is_sound",
    ],
)
def test_invalid_host_ports(host_ports: tuple[int, ...], reason: str | None) -> None:
    assert invalid_host_ports(host_ports) == reason
