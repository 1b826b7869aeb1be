"""What reaches a process is bounded: a NUL byte anywhere in argv, environment or paths, and a
command, shell or environment over its size limit, are refused at submission with the field
named, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.master.master import Master
from corral.spec.limits import MAX_COMMAND_BYTES, MAX_ENV_BYTES, MAX_ENV_ENTRIES

NUL = "a\0b"


def job(task: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "nul", "task": task, **extra}


def container(**docker: Any) -> dict[str, Any]:
    return {"shell": "true", "docker": {"image": "busybox", **docker}}


REFUSED = [
    (job({"command": ["echo", NUL]}), ["task", "command"]),
    (job({"command": [NUL]}), ["task", "command"]),
    (job({"shell": f"echo {NUL}"}), ["task", "shell"]),
    (job({"shell": "true", "env": {"A": NUL}}), ["task", "env"]),
    (job({"shell": "true", "env": {NUL: "v"}}), ["task", "env"]),
    (job({"shell": "true", "workdir": NUL}), ["task", "workdir"]),
    (job({"shell": "echo {X}"}, params={"X": ["ok", NUL]}), ["params", "X", 1]),
    (job(container(image=f"busy{NUL}")), ["task", "docker", "image"]),
    (job(container(entrypoint=["/bin/sh", NUL])), ["task", "docker", "entrypoint"]),
    (job(container(user=NUL)), ["task", "docker", "user"]),
    (
        job(container(parameters=[{"key": "hostname", "value": NUL}])),
        ["task", "docker", "parameters", 0, "value"],
    ),
    (
        job(container(volumes=[{"containerPath": "/d", "hostPath": f"/srv/{NUL}"}])),
        ["task", "docker", "volumes", 0, "hostPath"],
    ),
    (job(container(labels={"a": NUL})), ["task", "docker", "labels", "a"]),
    (job({"shell": "x" * (MAX_COMMAND_BYTES + 1)}), ["task", "shell"]),
    (job({"command": ["echo", "x" * MAX_COMMAND_BYTES]}), ["task", "command"]),
    (job({"command": ["echo"] * 5000}), ["task", "command"]),
    (
        job({"shell": "true", "env": {f"V{i}": "" for i in range(MAX_ENV_ENTRIES + 1)}}),
        ["task", "env"],
    ),
    (job({"shell": "true", "env": {"BIG": "x" * MAX_ENV_BYTES}}), ["task", "env"]),
]


@pytest.mark.parametrize(("body", "loc"), REFUSED)
def test_a_nul_byte_or_an_oversized_command_or_env_is_a_422_naming_the_field(
    api: TestClient, master: Master, body: dict[str, Any], loc: list[str | int]
) -> None:
    r = api.post("/api/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    locs = [e["loc"][1 : 1 + len(loc)] for e in r.json()["detail"]]
    assert loc in locs, r.text
    assert master.store.jobs() == []


def test_a_service_with_a_nul_in_its_health_check_command_is_refused(api: TestClient) -> None:
    check = {"protocol": "COMMAND", "command": f"test {NUL}"}
    body = {"id": "/nul", "task": {"shell": "true"}, "health_checks": [check]}
    r = api.post("/api/v1/services", json=body)
    assert r.status_code == 422, r.text
    assert ["body", "health_checks", 0, "command"] in [e["loc"] for e in r.json()["detail"]]


def test_a_command_and_env_within_the_limits_are_accepted(api: TestClient) -> None:
    env = {f"V{i}": "x" * 100 for i in range(MAX_ENV_ENTRIES)}
    body = job({"command": ["echo", "y" * (MAX_COMMAND_BYTES - 100)], "env": env})
    assert api.post("/api/v1/jobs", json=body).status_code == 201


def test_an_array_whose_copies_of_the_task_would_outgrow_the_run_budget_is_refused(
    api: TestClient, master: Master
) -> None:
    # 60 KiB of environment is within the env limit, but 100,000 copies of it are 6 GB.
    env = {"BIG": "x" * (60 * 1024)}
    r = api.post("/api/v1/jobs", json=job({"shell": "true", "env": env}, array="0-99999"))
    assert r.status_code == 422, r.text
    assert "MiB" in r.text and "tasks" in r.text
    assert master.store.jobs() == []
    small = job({"shell": "true", "env": env}, name="few", array="0-99")
    assert api.post("/api/v1/jobs", json=small).status_code == 201


def test_a_service_whose_instances_would_outgrow_the_run_budget_is_refused(
    api: TestClient,
) -> None:
    env = {"BIG": "x" * (60 * 1024)}
    body = {"id": "/big", "instances": 10_000, "task": {"shell": "true", "env": env}}
    r = api.post("/api/v1/services", json=body)
    assert r.status_code == 422, r.text
    assert "MiB" in r.text


def test_run_arguments_with_a_nul_byte_are_a_422_naming_them(
    api: TestClient, master: Master
) -> None:
    assert (
        api.post(
            "/api/v1/jobs", json=job({"command": ["echo"]}, schedule="R/2100-01-01T00:00:00Z/PT1H")
        ).status_code
        == 201
    )
    r = api.post("/api/v1/jobs/nul/runs", params={"arguments": ["ok", "a\0b"]})
    assert r.status_code == 422, r.text
    assert ["query", "arguments", 1] in [e["loc"] for e in r.json()["detail"]]
    assert master.store.runs("nul") == []
