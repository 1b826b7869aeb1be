"""Marathon apps whose command, arguments, environment or container settings hold a NUL byte,
or are over their size limits, are a 422 in Marathon's format at the field's path; nothing is
stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.spec.limits import MAX_COMMAND_BYTES, MAX_ENV_ENTRIES

NUL = "a\0b"


def app(**fields: Any) -> dict[str, Any]:
    return {"id": "/lab/nul", "cmd": "sleep 100", **fields}


def docker_app(docker: dict[str, Any] | None = None, **container: Any) -> dict[str, Any]:
    section = {"type": "DOCKER", "docker": {"image": "busybox", **(docker or {})}, **container}
    return app(container=section)


REFUSED = [
    (app(cmd=f"echo {NUL}"), "/cmd"),
    (app(cmd=None, args=["echo", NUL]), "/args"),
    (app(env={"A": NUL}), "/env"),
    (
        app(healthChecks=[{"protocol": "COMMAND", "command": {"value": NUL}}]),
        "/healthChecks(0)/command",
    ),
    (
        docker_app({"parameters": [{"key": "hostname", "value": NUL}]}),
        "/container/docker/parameters(0)/value",
    ),
    (
        docker_app(volumes=[{"containerPath": "/d", "hostPath": f"/x{NUL}", "mode": "RO"}]),
        "/container/volumes(0)/hostPath",
    ),
    (app(labels={"a": NUL}), "/labels/a"),
    (app(cmd="x" * (MAX_COMMAND_BYTES + 1)), "/cmd"),
    (app(env={f"V{i}": "" for i in range(MAX_ENV_ENTRIES + 1)}), "/env"),
]


@pytest.mark.parametrize(("body", "path"), REFUSED)
def test_a_nul_byte_or_an_oversized_field_is_a_422_at_its_marathon_path(
    api: TestClient, body: dict[str, Any], path: str
) -> None:
    r = api.post("/v2/apps", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "Object is not valid"
    assert path in [d["path"] for d in r.json()["details"]], r.text
    assert api.get("/v2/apps").json() == {"apps": []}
