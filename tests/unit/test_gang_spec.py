"""A gang job's spec: nodes × tasks per node, and what does not go with a gang."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from corral.spec.jobs import JobSpec


def spec(**extra: Any) -> JobSpec:
    return JobSpec.model_validate({"name": "mpi", "task": {"shell": "mpirun ./a.out"}, **extra})


def test_a_gang_has_nodes_times_tasks_per_node_ranks() -> None:
    assert spec(nodes=4, tasks_per_node=2).gang_size == 8
    assert spec(nodes=3).gang_size == 3
    assert spec().gang_size is None


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        pytest.param({"tasks_per_node": 2}, "tasks_per_node: needs 'nodes'", id="tpn alone"),
        pytest.param({"every_rank": True}, "every_rank: needs 'nodes'", id="every_rank alone"),
        pytest.param({"nodes": 2, "array": "0-3"}, "array: a gang job", id="gang with array"),
        pytest.param({"nodes": 2, "params": {"X": ["a"]}}, "params: a gang job", id="with params"),
        pytest.param({"nodes": 0}, "greater than or equal to 1", id="no nodes"),
        pytest.param({"nodes": 1000, "tasks_per_node": 1000}, "over the limit", id="too big"),
    ],
)
def test_what_a_gang_spec_refuses_names_the_field(extra: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        spec(**extra)
