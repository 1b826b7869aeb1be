"""A gang no set of agents could ever hold would wait forever: the native API refuses it at
submission, naming ``nodes`` (or ``tasks_per_node``), and stores nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.master.master import Master
from corral.master.records import AgentRecord
from corral.scheduler.model import Resources
from corral.spec.states import AgentState


def agent(name: str, state: AgentState = AgentState.ACTIVE) -> AgentRecord:
    return AgentRecord(
        id=name,
        hostname=name,
        total=Resources(millicpus=4000, mem=8192, disk=10000),
        attributes={},
        drivers=frozenset({"process"}),
        state=state,
        last_seq=0,
        registered_at=0.0,
    )


@pytest.fixture
def two_agents(master: Master) -> None:
    """The in-process master knows two agents of 4 cpus, and one that was lost."""
    for a in (agent("a1"), agent("a2"), agent("gone", AgentState.LOST)):
        master.state.agents[a.id] = a


def gang(**extra: Any) -> dict[str, Any]:
    return {"name": "mpi", "task": {"command": ["mpirun", "./a.out"], "cpus": 1}, **extra}


@pytest.mark.usefixtures("two_agents")
@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        pytest.param(
            {"nodes": 3},
            "nodes",
            "a gang of 3 nodes needs 3 agents, each with room for its task (driver process): "
            "the cluster has 2",
            id="more nodes than agents (a lost one does not count)",
        ),
        pytest.param(
            {"nodes": 2, "tasks_per_node": 5},
            "tasks_per_node",
            "no agent has room for a node of 5 tasks of 1 cpus, 128 MiB (driver process)",
            id="a node bigger than any agent",
        ),
    ],
)
def test_a_gang_no_set_of_agents_could_hold_is_refused_naming_the_field(
    api: TestClient, extra: dict[str, Any], field: str, says: str
) -> None:
    answer = api.post("/api/v1/jobs", json=gang(**extra))
    assert answer.status_code == 422
    [problem] = answer.json()["detail"]
    assert (problem["loc"], problem["msg"]) == (["body", field], says)
    assert api.get("/api/v1/jobs/mpi").status_code == 404


@pytest.mark.usefixtures("two_agents")
def test_a_gang_the_agents_can_hold_is_accepted_with_one_task_per_rank(api: TestClient) -> None:
    answer = api.post("/api/v1/jobs", json=gang(nodes=2, tasks_per_node=4))
    assert answer.status_code == 201, answer.text
    assert answer.json()["last_run"]["total"] == 8
    tasks = api.get("/api/v1/tasks", params={"job": "mpi"}).json()
    assert [t["id"] for t in tasks] == [f"mpi.1.{r}.0" for r in range(8)]
    assert [t["index"] for t in tasks] == list(range(8))
