"""Users, groups and tokens over the native API: who may manage what, and what a token is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from corral.master.master import Master
from corral.store.schema import tokens
from tests.api.conftest import FixedClock


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_user(api: TestClient, name: str, **fields: object) -> str:
    """Add a user as the admin; answers a token of theirs."""
    assert api.post("/api/v1/users", json={"name": name, **fields}).status_code == 201
    r = api.post("/api/v1/tokens", json={"user": name, "name": "test"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


@pytest.fixture
def alice(api: TestClient) -> Iterator[TestClient]:
    """A client of the user alice (in the group "physics" besides "users")."""
    assert api.post("/api/v1/groups", json={"name": "physics"}).status_code == 201
    token = add_user(api, "alice", groups=["physics"])
    with TestClient(api.app, headers=bearer(token)) as client:
        yield client


def test_an_admin_adds_a_user_who_belongs_to_their_groups(api: TestClient) -> None:
    api.post("/api/v1/groups", json={"name": "physics"})
    r = api.post("/api/v1/users", json={"name": "ann", "group": "physics", "groups": ["users"]})
    assert r.status_code == 201
    assert r.json()["group"] == "physics" and r.json()["groups"] == ["physics", "users"]
    assert api.get("/api/v1/groups/physics").json()["members"] == ["ann"]
    names = [u["name"] for u in api.get("/api/v1/users").json()]
    assert names == ["admin", "ann"]


def test_a_user_of_a_group_that_does_not_exist_is_refused_naming_the_field(
    api: TestClient,
) -> None:
    r = api.post("/api/v1/users", json={"name": "ann", "group": "nope"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "group"]
    assert api.get("/api/v1/users/ann").status_code == 404


def test_a_taken_name_and_a_bad_name_are_refused(api: TestClient) -> None:
    assert api.post("/api/v1/users", json={"name": "ann"}).status_code == 201
    assert api.post("/api/v1/users", json={"name": "ann"}).status_code == 409
    r = api.post("/api/v1/users", json={"name": "no spaces"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]


def test_the_last_admin_cannot_be_removed_and_a_removed_users_tokens_stop(
    api: TestClient, anonymous: TestClient
) -> None:
    assert api.delete("/api/v1/users/admin").status_code == 409
    token = add_user(api, "ann")
    assert anonymous.get("/api/v1/info", headers=bearer(token)).status_code == 200
    assert api.delete("/api/v1/users/ann").status_code == 204
    r = anonymous.get("/api/v1/info", headers=bearer(token))
    assert r.status_code == 401


def test_a_group_that_is_someones_primary_group_stays(api: TestClient) -> None:
    api.post("/api/v1/groups", json={"name": "physics"})
    api.post("/api/v1/users", json={"name": "ann", "group": "physics"})
    assert api.delete("/api/v1/groups/physics").status_code == 409
    assert api.delete("/api/v1/groups/physics/members/ann").status_code == 409
    assert api.delete("/api/v1/groups/users").status_code == 409  # the default group
    api.post("/api/v1/groups", json={"name": "chem"})
    assert api.delete("/api/v1/groups/chem").status_code == 204


def test_members_are_added_and_taken_out(api: TestClient) -> None:
    api.post("/api/v1/groups", json={"name": "chem"})
    api.post("/api/v1/users", json={"name": "ann"})
    r = api.post("/api/v1/groups/chem/members", json={"users": ["ann", "admin"]})
    assert r.json()["members"] == ["admin", "ann"]
    assert api.get("/api/v1/users/ann").json()["groups"] == ["users", "chem"]
    assert api.delete("/api/v1/groups/chem/members/admin").json()["members"] == ["ann"]
    r = api.post("/api/v1/groups/chem/members", json={"users": ["nobody"]})
    assert r.status_code == 422


def test_a_token_is_shown_once_and_stored_only_hashed(api: TestClient, master: Master) -> None:
    created = api.post("/api/v1/tokens", json={"name": "laptop"}).json()
    secret = created["token"]
    assert created["user"] == "admin" and created["name"] == "laptop"
    listed = api.get("/api/v1/tokens").json()
    assert created["id"] in [t["id"] for t in listed]
    assert secret not in api.get("/api/v1/tokens").text
    assert secret not in api.get(f"/api/v1/tokens/{created['id']}").text
    with master.store.engine.connect() as conn:
        stored = conn.execute(select(tokens.c.hash).where(tokens.c.id == created["id"])).scalar()
    assert stored is not None and secret not in stored and len(stored) == 64


def test_a_user_makes_and_revokes_their_own_tokens_only(api: TestClient, alice: TestClient) -> None:
    mine = alice.post("/api/v1/tokens", json={"name": "notebook"})
    assert mine.status_code == 201 and mine.json()["user"] == "alice"
    r = alice.post("/api/v1/tokens", json={"user": "admin"})
    assert r.status_code == 403 and "user" in r.json()["detail"]
    admins = api.get("/api/v1/tokens", params={"user": "admin"}).json()
    assert alice.delete(f"/api/v1/tokens/{admins[0]['id']}").status_code == 404
    assert {t["user"] for t in alice.get("/api/v1/tokens").json()} == {"alice"}
    assert alice.get("/api/v1/tokens", params={"user": "admin"}).json() == []
    assert alice.delete(f"/api/v1/tokens/{mine.json()['id']}").status_code == 204
    revoked = alice.get("/api/v1/tokens", params={"all": "true"}).json()
    assert {t["id"]: t["state"] for t in revoked}[mine.json()["id"]] == "revoked"
    assert mine.json()["id"] not in [t["id"] for t in alice.get("/api/v1/tokens").json()]


def test_a_token_may_be_narrower_than_its_user_never_wider(
    api: TestClient, alice: TestClient, anonymous: TestClient
) -> None:
    viewer = alice.post("/api/v1/tokens", json={"role": "viewer"}).json()["token"]
    assert anonymous.get("/api/v1/info", headers=bearer(viewer)).json()["role"] == "viewer"
    job = {"name": "j", "task": {"shell": "true"}}
    assert anonymous.post("/api/v1/jobs", json=job, headers=bearer(viewer)).status_code == 403
    r = alice.post("/api/v1/tokens", json={"role": "admin"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "role"]
    assert alice.post("/api/v1/tokens", json={"role": "agent"}).status_code == 422
    agent = api.post("/api/v1/tokens", json={"role": "agent"}).json()
    assert agent["role"] == "agent"


def test_a_token_expires_and_records_its_last_use_to_the_minute(
    api: TestClient, anonymous: TestClient, master: Master
) -> None:
    clock = master.state.clock
    assert isinstance(clock, FixedClock)
    created = api.post("/api/v1/tokens", json={"expires_in": 3600}).json()
    auth = bearer(created["token"])
    assert anonymous.get("/api/v1/info", headers=auth).status_code == 200
    first = api.get(f"/api/v1/tokens/{created['id']}").json()["last_used_at"]
    assert first is not None
    clock.t += 30  # within the minute: not written again
    anonymous.get("/api/v1/info", headers=auth)
    assert api.get(f"/api/v1/tokens/{created['id']}").json()["last_used_at"] == first
    clock.t += 60
    anonymous.get("/api/v1/info", headers=auth)
    assert api.get(f"/api/v1/tokens/{created['id']}").json()["last_used_at"] != first
    clock.t += 3600
    r = anonymous.get("/api/v1/info", headers=auth)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert api.get(f"/api/v1/tokens/{created['id']}").json()["state"] == "expired"


def test_who_am_i_says_the_user_their_role_and_groups(alice: TestClient) -> None:
    info = alice.get("/api/v1/info").json()
    assert (info["user"], info["role"], info["groups"]) == ("alice", "user", ["users", "physics"])


def test_a_users_work_is_theirs_and_counted_to_their_primary_group(
    api: TestClient, alice: TestClient
) -> None:
    r = alice.post("/api/v1/jobs", json={"name": "sim", "task": {"shell": "true"}})
    assert (r.json()["owner"], r.json()["group"]) == ("alice", "users")
    service = {"id": "/alice/web", "task": {"shell": "true"}, "instances": 0}
    assert alice.post("/api/v1/services", json=service).status_code == 201
    view = alice.get("/api/v1/services/alice/web").json()
    assert (view["owner"], view["group"]) == ("alice", "users")
    # An admin may submit on a user's behalf; the work counts to that user's group.
    api.post("/api/v1/groups", json={"name": "chem"})
    api.post("/api/v1/users", json={"name": "cat", "group": "chem"})
    r = api.post("/api/v1/jobs", json={"name": "c", "owner": "cat", "task": {"shell": "true"}})
    assert (r.json()["owner"], r.json()["group"]) == ("cat", "chem")
    # A user may not.
    r = alice.post("/api/v1/jobs", json={"name": "d", "owner": "cat", "task": {"shell": "true"}})
    assert r.status_code == 403 and r.json()["detail"].startswith("owner:")


def test_only_an_admin_manages_users_groups_and_agents(alice: TestClient) -> None:
    assert alice.get("/api/v1/users").status_code == 200
    assert alice.post("/api/v1/users", json={"name": "eve"}).status_code == 403
    assert alice.post("/api/v1/groups", json={"name": "eve"}).status_code == 403
    assert alice.delete("/api/v1/groups/physics/members/alice").status_code == 403
    assert alice.post("/api/v1/agents/any/drain").status_code == 403
