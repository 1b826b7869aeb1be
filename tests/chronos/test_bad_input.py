"""Bad Chronos job JSON: each case is a 400 whose message names the Chronos field, the store is
left as it was, and chronos-python shows that message in its error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import chronos  # type: ignore[import-untyped]
import httplib2  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.master.master import Master
from corral.spec.jobs import JobSpec
from corral.spec.limits import MAX_COMMAND_BYTES, MAX_ENV_ENTRIES

FUTURE = "R/2100-01-01T00:00:00Z/PT1H"


def chronos_job(**extra: Any) -> dict[str, Any]:
    return {"name": "bad", "command": "true", "schedule": FUTURE, "owner": "", **extra}


def docker(**extra: Any) -> dict[str, Any]:
    return {"type": "DOCKER", "image": "busybox", **extra}


def snapshot(master: Master) -> list[tuple[str, Any]]:
    return [(row["name"], row["spec"]) for row in master.store.jobs()]


SCHEDULED = [
    (chronos_job(schedule="R1//PT0S"), "schedule"),
    (chronos_job(schedule="R/2100-01-01T00:00:00Z/P0D"), "schedule"),
    (chronos_job(schedule="R1//-PT1M"), "schedule"),
    (chronos_job(schedule="R-1//PT1M"), "schedule"),
    (chronos_job(schedule="R1/2024-13-45T00:00:00Z/PT1M"), "schedule"),
    (chronos_job(schedule="R1//PT1X"), "schedule"),
    (chronos_job(schedule="R1/PT1M"), "schedule"),
    (chronos_job(schedule="0 * * * *"), "schedule"),
    (chronos_job(schedule=""), "schedule"),
    (chronos_job(parents=["other"]), "parents"),
    (chronos_job(epsilon="PT"), "epsilon"),
    (chronos_job(epsilon="60 seconds"), "epsilon"),
    (chronos_job(epsilon="P1M"), "epsilon"),
    (chronos_job(scheduleTimeZone="Mars/Olympus_Mons"), "scheduleTimeZone"),
    (chronos_job(name=""), "name"),
    (chronos_job(name="a/b"), "name"),
    (chronos_job(name="has space"), "name"),
    ({"command": "true", "schedule": FUTURE}, "name"),
    (chronos_job(command=""), "command"),
    (chronos_job(container={"type": "DOCKER"}), "container.image"),
    (chronos_job(container=docker(type="MESOS")), "container.type"),
    (chronos_job(container=docker(network="USER")), "container.network"),
    (
        chronos_job(container=docker(parameters=[{"key": "rm", "value": ""}])),
        "container.parameters",
    ),
    (
        chronos_job(container=docker(volumes=[{"containerPath": "/d", "hostPath": "/etc"}])),
        "container.volumes[0].hostPath",
    ),
    (
        chronos_job(container=docker(volumes=[{"containerPath": "/d", "hostPath": "relative"}])),
        "container.volumes[0].hostPath",
    ),
    (chronos_job(container=docker(volumes=[{"containerPath": "/d"}])), "container.volumes[0]"),
    (
        chronos_job(
            container=docker(volumes=[{"containerPath": "/d", "hostPath": "/x", "mode": "XX"}])
        ),
        "container.volumes[0].mode",
    ),
    (chronos_job(runAsUser="nobody"), "runAsUser"),
    (chronos_job(**{"async": True}), "async"),
    (chronos_job(uris=["http://example.org/input.tgz"]), "uris"),
    (chronos_job(fetch=[{"uri": "http://example.org/input.tgz"}]), "fetch"),
    (chronos_job(cpus="lots"), "cpus"),
    (chronos_job(cpus=-1), "cpus"),
    (chronos_job(cpus="NaN"), "cpus"),
    (chronos_job(cpus=100_000), "cpus"),
    (chronos_job(mem="512MB"), "mem"),
    (chronos_job(disk=-5), "disk"),
    (chronos_job(retries=-1), "retries"),
    (chronos_job(environmentVariables=[{"name": "1X", "value": "v"}]), "environmentVariables"),
    (chronos_job(constraints=[["rack", "NEAR", "a"]]), "constraints[0]"),
    (chronos_job(shell="perhaps"), "shell"),
    # Nothing that reaches a process may hold a NUL byte, and commands and env are bounded.
    (chronos_job(command="echo a\0b"), "command"),
    (chronos_job(command="echo", shell=False, arguments=["a\0b"]), "command"),
    (chronos_job(environmentVariables=[{"name": "A", "value": "a\0b"}]), "environmentVariables"),
    (chronos_job(container=docker(), runAsUser="no\0body"), "runAsUser"),
    (
        chronos_job(container=docker(parameters=[{"key": "hostname", "value": "a\0b"}])),
        "container.parameters[0].value",
    ),
    (
        chronos_job(container=docker(volumes=[{"containerPath": "/d", "hostPath": "/x\0y"}])),
        "container.volumes[0].hostPath",
    ),
    (chronos_job(command="x" * (MAX_COMMAND_BYTES + 1)), "command"),
    (
        chronos_job(
            environmentVariables=[
                {"name": f"V{i}", "value": ""} for i in range(MAX_ENV_ENTRIES + 1)
            ]
        ),
        "environmentVariables",
    ),
]


@pytest.mark.parametrize(("body", "field"), SCHEDULED)
def test_a_bad_scheduled_job_is_a_400_naming_the_field_and_nothing_is_stored(
    api: TestClient, master: Master, volume_root: Path, body: dict[str, Any], field: str
) -> None:
    before = snapshot(master)
    r = api.post("/scheduler/iso8601", json=body)
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert message.startswith(field) or f"{field}:" in message or f"{field}[" in message, message
    assert snapshot(master) == before


def test_a_dependent_job_needs_parents_and_no_schedule(api: TestClient, master: Master) -> None:
    for body, field in [
        (chronos_job(schedule=None), "parents"),
        (chronos_job(schedule=None, parents=[]), "parents"),
        (chronos_job(parents=["bad"]), "schedule"),
    ]:
        r = api.post("/scheduler/dependency", json=body)
        assert r.status_code == 400 and r.json()["message"].startswith(field), r.text
    assert snapshot(master) == []


def test_unknown_parents_are_refused_naming_them(api: TestClient, master: Master) -> None:
    r = api.post("/scheduler/dependency", json=chronos_job(schedule=None, parents=["ghost"]))
    assert r.status_code == 400
    assert r.json()["message"].startswith("parents[0]") and "ghost" in r.json()["message"]
    assert snapshot(master) == []


def test_a_dependency_cycle_is_refused_and_the_jobs_stay_as_they_were(
    api: TestClient, master: Master
) -> None:
    assert api.post("/scheduler/iso8601", json=chronos_job(name="a")).status_code == 204
    b = chronos_job(name="b", schedule=None, parents=["a"])
    assert api.post("/scheduler/dependency", json=b).status_code == 204
    before = snapshot(master)
    r = api.post("/scheduler/dependency", json=chronos_job(name="a", schedule=None, parents=["b"]))
    assert r.status_code == 400 and "cycle" in r.json()["message"], r.text
    assert r.json()["message"].startswith("parents")
    assert snapshot(master) == before
    row = master.store.job("a")
    assert row is not None and JobSpec.model_validate(row["spec"]).schedule == FUTURE


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe", b"[" * 100_000]
)
def test_a_body_that_is_not_a_json_object_is_a_400(api: TestClient, body: bytes) -> None:
    r = api.post("/scheduler/iso8601", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["status"] == "Bad Request"


def test_a_job_posted_without_a_json_content_type_is_read_all_the_same(
    api: TestClient, master: Master
) -> None:
    # curl -d sends application/x-www-form-urlencoded unless told otherwise.
    body = b'{"name": "plain", "command": "true", "schedule": "R/2100-01-01T00:00:00Z/PT1H"}'
    r = api.post(
        "/scheduler/iso8601",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 204 and master.store.job("plain") is not None


def test_run_now_with_unbalanced_quotes_in_arguments_is_a_400(api: TestClient) -> None:
    assert api.post("/scheduler/iso8601", json=chronos_job()).status_code == 204
    r = api.put("/scheduler/job/bad", params={"arguments": "'open"})
    assert r.status_code == 400 and r.json()["message"].startswith("arguments")


def test_run_now_with_a_nul_byte_in_arguments_is_a_400_naming_them(
    api: TestClient, master: Master
) -> None:
    assert api.post("/scheduler/iso8601", json=chronos_job()).status_code == 204
    r = api.put("/scheduler/job/bad", params={"arguments": "one a\0b"})
    assert r.status_code == 400 and r.json()["message"].startswith("arguments"), r.text
    assert master.store.runs("bad") == []


def test_chronos_python_shows_the_field_name_in_its_error(api: TestClient) -> None:
    r = api.post("/scheduler/iso8601", json=chronos_job(cpus="lots"))
    resp = httplib2.Response({"status": str(r.status_code), **r.headers})
    client = chronos.ChronosClient("localhost:1")
    with pytest.raises(chronos.ChronosAPIError, match="cpus"):
        client._check(resp, r.content)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_FIELDS = [
    "name", "command", "shell", "arguments", "schedule", "scheduleTimeZone", "parents",
    "epsilon", "retries", "owner", "description", "disabled", "concurrent", "softError",
    "async", "cpus", "mem", "disk", "environmentVariables", "constraints", "uris", "fetch",
    "runAsUser", "container",
]  # fmt: skip
_VALID = {"name": "fuzz", "command": "true", "schedule": FUTURE}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=6).map(
        lambda extra: {**_VALID, **extra}
    ),
    path=st.sampled_from(["/scheduler/iso8601", "/scheduler/dependency"]),
)
def test_no_job_json_makes_a_server_error(api: TestClient, body: dict[str, Any], path: str) -> None:
    r = api.post(path, json=body)
    assert r.status_code in (204, 400), r.text
    if r.status_code == 400:
        assert r.json()["message"]
