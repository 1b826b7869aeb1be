"""Each constraint operator, table-driven: arrange agents and a group → plan → where it went.

Agents have 4 cpus and tasks take 1, so BINPACK fills the lowest-id feasible agent first and
every expected placement below follows from the constraint alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from corral.scheduler import Constraint, Operator
from corral.scheduler.harness import Harness, check_plan

LIKE, UNLIKE, CLUSTER = Operator.LIKE, Operator.UNLIKE, Operator.CLUSTER
UNIQUE, MAX_PER, GROUP_BY = Operator.UNIQUE, Operator.MAX_PER, Operator.GROUP_BY


@dataclass(frozen=True)
class Case:
    agents: dict[str, dict[str, str]]  # agent id -> attributes ("hostname" sets the hostname)
    constraints: tuple[Constraint, ...]
    tasks: int
    expected: list[str]  # the agent of each placement, in decision order
    placed: tuple[tuple[str, str], ...] = ()  # (agent id, group) of tasks already running
    cpus: dict[str, float] | None = None  # agent id -> cpus, when not 4


CASES = [
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", LIKE, "b"),),
            2,
            ["b1", "b1"],
        ),
        id="like_places_only_on_agents_whose_field_matches",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "ab"}, "a2": {"rack": "a"}}, (Constraint("rack", LIKE, "a"),), 1, ["a2"]
        ),
        id="like_must_match_the_whole_value_not_a_prefix",
    ),
    pytest.param(
        Case({"a1": {}, "b1": {"rack": "b"}}, (Constraint("rack", LIKE, ".*"),), 1, ["b1"]),
        id="like_fails_an_agent_without_the_attribute",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", UNLIKE, "a"),),
            1,
            ["b1"],
        ),
        id="unlike_avoids_agents_whose_field_matches",
    ),
    pytest.param(
        Case({"a1": {}, "b1": {"rack": "b"}}, (Constraint("rack", UNLIKE, "b"),), 1, ["a1"]),
        id="unlike_passes_an_agent_without_the_attribute",
    ),
    pytest.param(
        Case(
            {"a1": {"hostname": "x.lan"}, "b1": {"hostname": "y.lan"}},
            (Constraint("hostname", UNLIKE, r"x\..*"),),
            1,
            ["b1"],
        ),
        id="hostname_field_reads_the_agent_hostname_not_its_id",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", CLUSTER, "b"),),
            1,
            ["b1"],
        ),
        id="cluster_with_a_value_places_only_on_that_value",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", Operator.IS, "b"),),
            1,
            ["b1"],
        ),
        id="is_marathons_name_of_cluster_with_a_value_places_only_on_that_value",
    ),
    pytest.param(
        Case(
            {"x1": {"rack": "a"}, "y1": {"rack": "b"}, "z1": {"rack": "a"}},
            (Constraint("rack", CLUSTER),),
            6,
            ["x1"] * 4 + ["z1"] * 2,
        ),
        id="cluster_without_a_value_follows_the_first_placed_task",
    ),
    pytest.param(
        Case(
            {"x1": {"rack": "a"}, "y1": {"rack": "b"}},
            (Constraint("rack", CLUSTER),),
            1,
            ["y1"],
            placed=(("y1", "g"),),
        ),
        id="cluster_without_a_value_follows_tasks_already_placed",
    ),
    pytest.param(
        Case(
            {"x1": {"rack": "a"}, "y1": {"rack": "b"}},
            (Constraint("rack", CLUSTER),),
            1,
            [],
            placed=(("x1", "g"), ("y1", "g")),
        ),
        id="cluster_without_a_value_places_nothing_when_the_group_already_spans_two_values",
    ),
    pytest.param(
        Case(
            {"h1": {}, "h2": {}, "h3": {}}, (Constraint("hostname", UNIQUE),), 5, ["h1", "h2", "h3"]
        ),
        id="unique_hostname_never_places_two_tasks_of_a_group_on_one_host",
    ),
    pytest.param(
        Case(
            {"h1": {}, "h2": {}},
            (Constraint("hostname", UNIQUE),),
            2,
            ["h2"],
            placed=(("h1", "g"),),
        ),
        id="unique_counts_tasks_of_the_group_already_placed",
    ),
    pytest.param(
        Case(
            {"h1": {}, "h2": {}},
            (Constraint("hostname", UNIQUE),),
            2,
            ["h1", "h2"],
            placed=(("h1", "other"),),
        ),
        id="unique_ignores_tasks_of_other_groups",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "a2": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", UNIQUE),),
            3,
            ["a1", "b1"],
        ),
        id="unique_on_an_attribute_allows_one_task_per_value",
    ),
    pytest.param(
        Case(
            {"a1": {"hostname": "h"}, "a2": {"hostname": "h"}},
            (Constraint("hostname", UNIQUE),),
            2,
            ["a1"],
        ),
        id="unique_hostname_treats_two_agents_of_one_hostname_as_one_host",
    ),
    pytest.param(
        Case(
            {"a1": {"hostname": "h"}, "a2": {"hostname": "h"}},
            (Constraint("agent", UNIQUE),),
            2,
            ["a1", "a2"],
        ),
        id="unique_agent_counts_per_agent_id",
    ),
    pytest.param(
        Case(
            {"a1": {"hostname": "h"}, "a2": {"hostname": "h"}},
            (Constraint("id", UNIQUE),),
            2,
            ["a1", "a2"],
        ),
        id="unique_id_is_a_synonym_of_agent",
    ),
    pytest.param(
        Case({"a1": {}, "b1": {"rack": "b"}}, (Constraint("rack", UNIQUE),), 2, ["b1"]),
        id="unique_fails_an_agent_without_the_attribute",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "a2": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", MAX_PER, "2"),),
            5,
            ["a1", "a1", "b1", "b1"],
        ),
        id="max_per_caps_the_tasks_of_a_group_per_value",
    ),
    pytest.param(
        Case(
            {"h1": {}, "h2": {}},
            (Constraint("hostname", MAX_PER, "3"),),
            4,
            ["h1", "h1", "h1", "h2"],
            cpus={"h2": 8},
        ),
        id="max_per_hostname_moves_on_once_a_host_holds_n",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "a2": {"rack": "a"}},
            (Constraint("rack", MAX_PER, "2"),),
            2,
            ["a1"],
            placed=(("a2", "g"),),
        ),
        id="max_per_counts_tasks_of_the_group_already_placed",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "a2": {"rack": "a"}, "b1": {"rack": "b"}, "c1": {"rack": "c"}},
            (Constraint("rack", GROUP_BY),),
            6,
            ["a1", "b1", "c1", "a1", "b1", "c1"],
        ),
        id="group_by_spreads_a_group_evenly_over_the_values",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", GROUP_BY),),
            3,
            ["b1", "b1", "a1"],
            placed=(("a1", "g"),),
        ),
        id="group_by_fills_the_least_used_value_first_counting_placed_tasks",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", GROUP_BY, "3"),),
            4,
            ["a1", "b1"],
        ),
        id="group_by_with_n_waits_for_n_values_before_doubling_up_like_marathon",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", GROUP_BY, "2"),),
            4,
            ["a1", "b1", "a1", "b1"],
        ),
        id="group_by_with_n_doubles_up_once_n_values_are_in_use",
    ),
    pytest.param(
        Case({"a1": {"rack": "a"}, "n1": {}}, (Constraint("rack", GROUP_BY),), 2, ["a1", "a1"]),
        id="group_by_fails_an_agent_without_the_attribute",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", GROUP_BY),),
            4,
            ["a1", "b1", "b1"],
            cpus={"a1": 1},
        ),
        id="group_by_is_strict_a_full_value_holds_the_others_back_like_marathon",
    ),
    pytest.param(
        Case(
            {"a1": {"rack": "a"}, "a2": {"rack": "a"}, "b1": {"rack": "b"}},
            (Constraint("rack", LIKE, "a"), Constraint("hostname", MAX_PER, "1")),
            3,
            ["a1", "a2"],
        ),
        id="all_constraints_of_a_task_must_hold_at_once",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_constraint(case: Case) -> None:
    h = Harness()
    for agent_id, attributes in case.agents.items():
        attrs = dict(attributes)
        hostname = attrs.pop("hostname", None)
        cpus = (case.cpus or {}).get(agent_id, 4)
        h.add_agent(agent_id, cpus=cpus, hostname=hostname, attributes=attrs)
    for i, (agent_id, group) in enumerate(case.placed):
        h.add_placed(f"running-{i}", agent_id, group=group, cpus=0, mem=0)
    h.add_tasks(case.tasks, constraints=case.constraints)

    result = h.plan()

    assert [p.agent_id for p in result.placements] == case.expected
    assert len(result.unplaced) == case.tasks - len(case.expected)
    assert check_plan(h.snapshot(), h.pending, result) == []
