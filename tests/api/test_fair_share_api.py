"""Weights, quotas and the fair-share report over the native API: admins set them, bad values
are refused naming the field, and the report shows each user's standing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.test_accounts import add_user, bearer


def test_an_admin_sets_a_users_role_weight_and_quotas_and_lifts_one(api: TestClient) -> None:
    add_user(api, "alice")
    r = api.patch(
        "/api/v1/users/alice",
        json={"role": "viewer", "weight": 2, "quota_cpus": 8, "quota_mem": 4096, "quota_tasks": 3},
    )
    assert r.status_code == 200, r.text
    view = r.json()
    assert (view["role"], view["weight"]) == ("viewer", 2.0)
    assert view["quota"] == {"cpus": 8.0, "mem": 4096, "gpus": None, "tasks": 3}
    r = api.patch("/api/v1/users/alice", json={"quota_mem": None, "weight": None})
    assert r.json()["quota"] == {"cpus": 8.0, "mem": None, "gpus": None, "tasks": 3}
    assert r.json()["weight"] == 1.0 and r.json()["role"] == "viewer"
    assert api.get("/api/v1/users/alice").json()["quota"]["cpus"] == 8.0


def test_an_admin_sets_a_groups_weight_and_quotas(api: TestClient) -> None:
    api.post("/api/v1/groups", json={"name": "physics"})
    r = api.patch("/api/v1/groups/physics", json={"weight": 0.5, "quota_gpus": 2})
    assert r.status_code == 200, r.text
    assert r.json()["weight"] == 0.5 and r.json()["quota"]["gpus"] == 2
    assert api.patch("/api/v1/groups/nope", json={"weight": 2}).status_code == 404
    assert api.patch("/api/v1/users/nope", json={"weight": 2}).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weight": 0}, "weight"),
        ({"weight": -1}, "weight"),
        ({"weight": 1e9}, "weight"),
        ({"weight": "heavy"}, "weight"),
        ({"quota_cpus": -1}, "quota_cpus"),
        ({"quota_mem": 1.5}, "quota_mem"),
        ({"quota_gpus": "two"}, "quota_gpus"),
        ({"quota_tasks": -3}, "quota_tasks"),
        ({"role": "emperor"}, "role"),
        ({"quota": 3}, "quota"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    api: TestClient, body: dict[str, object], field: str
) -> None:
    add_user(api, "alice")
    r = api.patch("/api/v1/users/alice", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert api.get("/api/v1/users/alice").json()["weight"] == 1.0  # nothing written


def test_only_admins_change_weights_and_quotas(api: TestClient, anonymous: TestClient) -> None:
    token = add_user(api, "alice")
    api.post("/api/v1/groups", json={"name": "physics"})
    for path in ("/api/v1/users/alice", "/api/v1/groups/physics"):
        r = anonymous.patch(path, json={"weight": 100}, headers=bearer(token))
        assert r.status_code == 403, r.text
    assert api.get("/api/v1/users/alice").json()["weight"] == 1.0


def test_the_last_admin_keeps_their_role(api: TestClient) -> None:
    r = api.patch("/api/v1/users/admin", json={"role": "user"})
    assert r.status_code == 409 and "last admin" in r.json()["detail"]


def test_the_share_report_shows_each_users_weight_quota_and_waiting_work(
    api: TestClient, anonymous: TestClient
) -> None:
    token = add_user(api, "alice")
    api.post("/api/v1/groups", json={"name": "physics"})
    api.patch("/api/v1/users/alice", json={"weight": 2, "quota_cpus": 4})
    api.patch("/api/v1/groups/users", json={"quota_tasks": 10})
    job = {"name": "sweep", "array": "0-2", "task": {"shell": "true"}}
    assert anonymous.post("/api/v1/jobs", json=job, headers=bearer(token)).status_code == 201
    r = anonymous.get("/api/v1/share", headers=bearer(token))  # everyone signed in reads it
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["half_life"] == 86400.0
    lines = {u["user"]: u for u in report["users"]}
    assert set(lines) == {"admin", "alice"}
    alice = lines["alice"]
    assert (alice["group"], alice["weight"], alice["waiting"], alice["running"]) == (
        "users",
        2.0,
        3,
        0,
    )
    assert alice["quota"]["cpus"] == 4.0 and alice["group_quota"]["tasks"] == 10
    assert alice["share"] == 0.0 and alice["usage"]["cpu_hours"] == 0.0
