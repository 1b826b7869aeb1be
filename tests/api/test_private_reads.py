"""Private reads: a user's event streams carry only their own work, replayed or live, even when
a name they once used is taken by someone else; admins and viewers still see everything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from corral.api.app import create_app
from corral.master.master import Master


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app_client(master: Master, token: str) -> Iterator[TestClient]:
    """The admin's client of an app whose users read only their own work."""
    with TestClient(create_app(master, private_reads=True), headers=bearer(token)) as client:
        yield client


def user(api: TestClient, name: str, role: str = "user") -> dict[str, str]:
    api.post("/api/v1/users", json={"name": name, "role": role})
    return bearer(api.post("/api/v1/tokens", json={"user": name}).json()["token"])


def job(name: str) -> dict[str, object]:
    return {"name": name, "task": {"shell": "true"}}


@contextmanager
def following(
    client: TestClient, path: str, headers: dict[str, str]
) -> Iterator[Iterator[dict[str, object]]]:
    """The events of a stream, parsed, as they come."""
    with client.stream("GET", path, headers=headers) as r:
        assert r.status_code == 200

        def events() -> Iterator[dict[str, object]]:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    yield json.loads(line[6:])

        yield events()


def until(events: Iterator[dict[str, object]], sentinel: str) -> list[dict[str, object]]:
    """The events up to the first that mentions ``sentinel`` (the caller's own work, made to
    end the wait), that one included."""
    seen = []
    for ev in events:
        seen.append(ev)
        if sentinel in json.dumps(ev):
            return seen
    raise AssertionError(f"the stream ended before {sentinel!r}")


def test_a_users_event_stream_replays_and_follows_only_their_own_work(
    app_client: TestClient,
) -> None:
    alice, bob = user(app_client, "alice"), user(app_client, "bob")
    viewer = user(app_client, "vic", "viewer")
    app_client.post("/api/v1/jobs", json=job("alice-before"), headers=alice)
    with following(app_client, "/api/v1/events?since=0", bob) as events:
        app_client.post("/api/v1/jobs", json=job("bob-first"), headers=bob)
        replayed = until(events, "bob-first")
        app_client.post("/api/v1/jobs", json=job("alice-live"), headers=alice)
        app_client.post("/api/v1/jobs", json=job("bob-second"), headers=bob)
        live = until(events, "bob-second")
    text = json.dumps(replayed + live)
    assert "alice-before" not in text and "alice-live" not in text
    assert {"job_created", "run_state", "task_state"} <= {str(e["type"]) for e in replayed + live}
    with following(app_client, "/api/v1/events?since=0", viewer) as events:
        everything = json.dumps(until(events, "bob-second"))
    assert "alice-before" in everything and "alice-live" in everything


def test_a_name_taken_again_by_another_user_shows_each_only_their_own_events(
    app_client: TestClient,
) -> None:
    alice, bob = user(app_client, "alice"), user(app_client, "bob")
    app_client.post("/api/v1/jobs", json=job("shared"), headers=alice)
    app_client.post("/api/v1/jobs/shared/kill", headers=alice)
    assert app_client.delete("/api/v1/jobs/shared", headers=alice).status_code == 204
    app_client.post("/api/v1/jobs", json=job("shared"), headers=bob)
    app_client.post("/api/v1/jobs", json=job("alice-end"), headers=alice)
    app_client.post("/api/v1/jobs", json=job("bob-end"), headers=bob)
    with following(app_client, "/api/v1/events?since=0", alice) as events:
        alices = until(events, "alice-end")
    with following(app_client, "/api/v1/events?since=0", bob) as events:
        bobs = until(events, "bob-end")
    owners = [
        e["data"].get("owner")
        for e in alices + bobs
        if e["type"] == "job_created" and e["job"] == "shared" and isinstance(e["data"], dict)
    ]
    assert owners == ["alice", "bob"]  # each saw their own creation only
    alice_ids = {e["id"] for e in alices}
    assert not alice_ids & {e["id"] for e in bobs if e.get("job") == "shared"}


def test_marathons_event_stream_shows_a_user_only_their_own_apps(
    app_client: TestClient,
) -> None:
    alice, bob = user(app_client, "alice"), user(app_client, "bob")
    app = {"cmd": "true", "instances": 0, "cpus": 0.1, "mem": 32}
    with following(app_client, "/v2/events", bob) as events:
        app_client.post("/v2/apps", json={**app, "id": "/alice/web"}, headers=alice)
        app_client.post("/v2/apps", json={**app, "id": "/bob/web"}, headers=bob)
        seen = until(events, "/bob/web")
    assert "/alice/web" not in json.dumps(seen)
    assert {str(e["eventType"]) for e in seen} == {"event_stream_attached", "api_post_event"}


def test_a_user_reads_their_own_line_of_the_fair_share_report(app_client: TestClient) -> None:
    alice = user(app_client, "alice")
    user(app_client, "bob")
    mine = app_client.get("/api/v1/share", headers=alice).json()["users"]
    assert [u["user"] for u in mine] == ["alice"]
    everyone = app_client.get("/api/v1/share").json()["users"]  # the admin's
    assert {"admin", "alice", "bob"} <= {u["user"] for u in everyone}
