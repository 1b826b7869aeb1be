"""A job or service asking for more GPUs than any agent has would wait forever: each API refuses
it at submission, naming the field as its clients expect, and stores nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from corral.master.master import Master
from corral.master.records import AgentRecord
from corral.scheduler.model import Resources
from corral.spec.protocol import declared_gpus
from corral.spec.states import AgentState

WHY = "2 GPUs asked for, but no agent has more than 1"


@pytest.fixture
def one_gpu(master: Master) -> None:
    """The in-process master knows one agent, with one GPU."""
    master.state.agents["a1"] = AgentRecord(
        id="a1",
        hostname="a1",
        total=Resources(millicpus=4000, mem=8192, disk=10000, gpus=1),
        attributes={},
        drivers=frozenset({"process"}),
        state=AgentState.ACTIVE,
        last_seq=0,
        registered_at=0.0,
        gpus=tuple(declared_gpus(1)),
    )


def job(gpus: int) -> dict[str, object]:
    return {"name": "train", "task": {"shell": "python train.py", "gpus": gpus}}


@pytest.mark.usefixtures("one_gpu")
def test_the_native_api_refuses_a_job_asking_for_more_gpus_than_any_agent_has(
    api: TestClient,
) -> None:
    answer = api.post("/api/v1/jobs", json=job(2))
    assert answer.status_code == 422
    [problem] = answer.json()["detail"]
    assert problem["loc"] == ["body", "task", "gpus"]
    assert problem["msg"].startswith(WHY)
    assert api.get("/api/v1/jobs/train").status_code == 404


@pytest.mark.usefixtures("one_gpu")
def test_a_job_asking_for_as_many_gpus_as_an_agent_has_is_accepted(api: TestClient) -> None:
    assert api.post("/api/v1/jobs", json=job(1)).status_code == 201


def test_with_no_agent_known_a_gpu_job_is_refused_saying_no_agent_has_any(
    api: TestClient,
) -> None:
    answer = api.post("/api/v1/jobs", json=job(1))
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["msg"].startswith("1 GPU asked for, but no agent has any")


@pytest.mark.usefixtures("one_gpu")
def test_the_native_api_refuses_a_service_asking_for_too_many_gpus(api: TestClient) -> None:
    service = {"id": "/infer", "instances": 1, "task": {"shell": "serve", "gpus": 2}}
    answer = api.post("/api/v1/services", json=service)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "task", "gpus"]
    assert api.get("/api/v1/services/infer").status_code == 404


@pytest.mark.usefixtures("one_gpu")
def test_marathon_refuses_an_app_asking_for_too_many_gpus_at_path_gpus(api: TestClient) -> None:
    answer = api.post("/v2/apps", json={"id": "/infer", "cmd": "serve", "gpus": 2})
    assert answer.status_code == 422
    body = answer.json()
    assert body["message"] == "Object is not valid"
    [detail] = body["details"]
    assert detail["path"] == "/gpus"
    assert detail["errors"][0].startswith(WHY)
    assert api.get("/v2/apps/infer").status_code == 404


@pytest.mark.usefixtures("one_gpu")
def test_chronos_refuses_a_job_asking_for_too_many_gpus_naming_gpus(api: TestClient) -> None:
    chronos_job = {"name": "train", "command": "python train.py", "schedule": "R1//PT1H"}
    answer = api.post("/scheduler/iso8601", json={**chronos_job, "gpus": 2})
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(f"gpus: {WHY}")
    assert api.get("/api/v1/jobs/train").status_code == 404


@pytest.mark.usefixtures("one_gpu")
def test_chronos_keeps_the_gpus_a_job_asks_for_and_lists_them(api: TestClient) -> None:
    chronos_job = {"name": "train", "command": "python train.py", "schedule": "R1//PT1H"}
    assert api.post("/scheduler/iso8601", json={**chronos_job, "gpus": 1}).status_code == 204
    assert api.get("/api/v1/jobs/train").json()["spec"]["task"]["gpus"] == 1
    [listed] = [j for j in api.get("/scheduler/jobs").json() if j["name"] == "train"]
    assert listed["gpus"] == 1
