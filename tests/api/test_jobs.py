"""Submitting, listing, applying, killing and deleting jobs through the native API."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.master.master import Master


def job(name: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"name": name, "task": {"command": ["echo", "hi"]}, **extra}


def test_a_new_job_is_stored_with_its_first_run_pending(api: TestClient) -> None:
    r = api.post("/api/v1/jobs", json=job())
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "hello" and body["owner"] == "admin" and body["runs"] == 1
    assert body["last_run"]["state"] == "PENDING"
    assert body["last_run"]["counts"] == {"PENDING": 1}
    tasks = api.get("/api/v1/tasks", params={"job": "hello"}).json()
    assert [t["id"] for t in tasks] == ["hello.1.0.0"]
    history = api.get("/api/v1/tasks/hello.1.0.0").json()["events"]
    assert [(e["state"], e["reason"]) for e in history] == [("PENDING", "submitted")]


def test_an_array_makes_one_task_per_index_with_index_substituted(api: TestClient) -> None:
    spec = job("sweep", array="3-5", task={"command": ["sim", "in_{index}.mac"]})
    assert api.post("/api/v1/jobs", json=spec).status_code == 201
    tasks = api.get("/api/v1/tasks", params={"job": "sweep"}).json()
    assert [(t["index"], t["command"]) for t in tasks] == [
        (3, ["sim", "in_3.mac"]),
        (4, ["sim", "in_4.mac"]),
        (5, ["sim", "in_5.mac"]),
    ]


def test_a_parameter_sweep_runs_every_combination(api: TestClient, master: Master) -> None:
    spec = job(
        "grid",
        params={"energy": ["1", "2"], "seed": ["a", "b", "c"]},
        task={"shell": "run --e {energy} --s {seed}"},
    )
    assert api.post("/api/v1/jobs", json=spec).status_code == 201
    shells = {t["shell"] for t in api.get("/api/v1/tasks", params={"job": "grid"}).json()}
    assert shells == {f"run --e {e} --s {s}" for e in "12" for s in "abc"}
    env = master.store.task("grid.1.0.0")["launch"]["env"]  # type: ignore[index]
    assert env["CORRAL_PARAM_energy"] == "1" and env["CORRAL_ARRAY_INDEX"] == "0"


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (job(task={"command": ["x"], "cpus": -1}), ["body", "task", "cpus"], "greater than 0"),
        (job(task={"command": ["x"], "shell": "x"}), ["body", "task"], "not both"),
        (job(task={}), ["body", "task"], "exactly one"),
        (job(array="5-1"), ["body", "array"], "ends before it starts"),
        (job(array="zero"), ["body", "array"], "not an index"),
        (job("a/b"), ["body", "name"], "pattern"),
        (job(""), ["body", "name"], "pattern"),
        (job(retries=-1), ["body", "retries"], "greater than or equal"),
        (job(task={"command": []}), ["body", "task", "command"], "must name a program"),
        (job(task={"command": ["x"], "env": {"1BAD": "v"}}), ["body", "task", "env"], "1BAD"),
        (job(surprise=1), ["body", "surprise"], "Extra inputs"),
        (job(constraints=[["rack", "LIKE", "("]]), ["body", "constraints", 0], "regular"),
        (job(constraints=[["rack", "MAX_PER", "x"]]), ["body", "constraints", 0], "MAX_PER"),
        (job(array="0-100000000"), ["body", "array"], "over the limit"),
    ],
)
def test_an_invalid_spec_is_422_naming_the_field_and_stores_nothing(
    api: TestClient, spec: dict[str, Any], field: list[Any], words: str
) -> None:
    r = api.post("/api/v1/jobs", json=spec)
    assert r.status_code == 422
    details = r.json()["detail"]
    assert any(d["loc"][: len(field)] == field and words in d["msg"] for d in details), details
    assert api.get("/api/v1/jobs").json() == []
    assert api.get("/api/v1/tasks").json() == []


def test_a_body_that_is_not_json_is_422(api: TestClient) -> None:
    r = api.post("/api/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_a_taken_name_is_409_and_the_first_job_is_untouched(api: TestClient) -> None:
    api.post("/api/v1/jobs", json=job())
    r = api.post("/api/v1/jobs", json=job(task={"command": ["other"]}))
    assert r.status_code == 409
    assert "already exists" in r.json()["detail"]
    assert api.get("/api/v1/jobs/hello").json()["spec"]["task"]["command"] == ["echo", "hi"]


def test_unknown_jobs_runs_and_tasks_are_404(api: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/jobs/nope"),
        ("DELETE", "/api/v1/jobs/nope"),
        ("POST", "/api/v1/jobs/nope/kill"),
        ("POST", "/api/v1/jobs/nope/runs"),
        ("GET", "/api/v1/jobs/nope/runs"),
        ("GET", "/api/v1/tasks/nope.1.0.0"),
        ("POST", "/api/v1/tasks/nope.1.0.0/kill"),
        ("GET", "/api/v1/tasks/nope.1.0.0/logs/stdout"),
    ]:
        r = api.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert "not found" in r.json()["detail"]
    api.post("/api/v1/jobs", json=job())
    assert api.get("/api/v1/jobs/hello/runs/7").status_code == 404


def test_apply_creates_then_ignores_the_same_spec_then_runs_a_changed_one(
    api: TestClient,
) -> None:
    first = api.put("/api/v1/jobs/hello", json=job())
    assert first.status_code == 201 and first.headers["x-corral-changed"] == "true"
    same = api.put("/api/v1/jobs/hello", json=job())
    assert same.status_code == 200 and same.headers["x-corral-changed"] == "false"
    assert same.json()["runs"] == 1
    changed = api.put("/api/v1/jobs/hello", json=job(task={"command": ["echo", "bye"]}))
    assert changed.status_code == 200 and changed.json()["runs"] == 2
    assert api.get("/api/v1/tasks/hello.2.0.0").json()["command"] == ["echo", "bye"]


def test_apply_refuses_a_body_whose_name_differs_from_the_url(api: TestClient) -> None:
    r = api.put("/api/v1/jobs/other", json=job())
    assert r.status_code == 400 and "differs" in r.json()["detail"]


def test_killing_a_pending_job_kills_its_tasks_and_its_run(api: TestClient) -> None:
    api.post("/api/v1/jobs", json=job(array="0-2"))
    r = api.post("/api/v1/jobs/hello/kill")
    assert r.status_code == 200
    assert r.json()["last_run"]["state"] == "KILLED"
    states = {t["state"] for t in api.get("/api/v1/tasks", params={"job": "hello"}).json()}
    assert states == {"KILLED"}
    task = api.get("/api/v1/tasks/hello.1.1.0").json()
    assert task["events"][-1]["reason"] == "killed by user"


def test_a_job_with_unfinished_tasks_cannot_be_deleted_until_killed(api: TestClient) -> None:
    api.post("/api/v1/jobs", json=job(array="0-1"))
    r = api.delete("/api/v1/jobs/hello")
    assert r.status_code == 409 and "2 unfinished tasks" in r.json()["detail"]
    api.post("/api/v1/jobs/hello/kill")
    assert api.delete("/api/v1/jobs/hello").status_code == 204
    assert api.get("/api/v1/jobs/hello").status_code == 404
    assert api.get("/api/v1/tasks", params={"job": "hello"}).json() == []


def test_a_job_deleted_and_created_again_never_reuses_a_task_id(api: TestClient) -> None:
    api.post("/api/v1/jobs", json=job("dup"))
    api.post("/api/v1/jobs/dup/runs")
    api.post("/api/v1/jobs/dup/kill")
    assert api.delete("/api/v1/jobs/dup").status_code == 204
    r = api.post("/api/v1/jobs", json=job("dup"))
    # An agent may still keep dup.1.0.0's sandbox: the new incarnation counts on from run 3.
    assert r.status_code == 201 and r.json()["runs"] == 3
    tasks = api.get("/api/v1/tasks", params={"job": "dup"}).json()
    assert [t["id"] for t in tasks] == ["dup.3.0.0"]


def test_run_now_starts_another_run(api: TestClient) -> None:
    api.post("/api/v1/jobs", json=job())
    r = api.post("/api/v1/jobs/hello/runs")
    assert r.status_code == 201 and r.json()["number"] == 2
    assert [x["number"] for x in api.get("/api/v1/jobs/hello/runs").json()] == [2, 1]


def test_the_openapi_document_describes_the_job_spec(api: TestClient) -> None:
    doc = api.get("/api/v1/openapi.json").json()
    assert "/api/v1/jobs" in doc["paths"]
    assert "JobSpec" in doc["components"]["schemas"]
