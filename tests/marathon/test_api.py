"""The Marathon v2 API in process: what it accepts, refuses, stores and answers. No agent runs,
so tasks stay waiting; the engine's behaviour is tested in tests/master and on real processes
in tests/marathon/test_marathon_client.py."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from corral.master.master import Master

APP: dict[str, Any] = {
    "id": "/lab/portal",
    "cmd": "python3 -m http.server $PORT0",
    "instances": 2,
    "cpus": 0.25,
    "mem": 64,
    "labels": {"team": "physics"},
    "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}],
}


def settle(master: Master) -> None:
    """One pass of the service loop: the tasks of new services are created."""
    asyncio.run(master.service_loop.run_once())


def test_a_posted_app_is_answered_created_with_its_deployment(
    api: TestClient, master: Master
) -> None:
    r = api.post("/v2/apps", json=APP)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == "/lab/portal" and body["instances"] == 2
    assert (
        body["deployments"] and r.headers["Marathon-Deployment-Id"] == body["deployments"][0]["id"]
    )
    assert r.headers["Location"] == "/v2/apps/lab/portal"
    settle(master)
    got = api.get("/v2/apps/lab/portal").json()["app"]
    # No agent: the two instances wait in the queue, and are no tasks yet.
    assert got["cmd"] == APP["cmd"] and got["tasksStaged"] == 0 and got["tasks"] == []


def test_posting_an_app_twice_is_a_conflict_in_marathons_words(api: TestClient) -> None:
    api.post("/v2/apps", json=APP)
    r = api.post("/v2/apps", json=APP)
    assert r.status_code == 409
    assert r.json()["message"] == "An app with id [/lab/portal] already exists."


def test_an_invalid_app_names_the_field_in_marathons_error_format(api: TestClient) -> None:
    r = api.post("/v2/apps", json={**APP, "cpus": -1})
    assert r.status_code == 422
    body = r.json()
    assert body["message"] == "Object is not valid"
    assert [d["path"] for d in body["details"]] == ["/cpus"]
    assert api.get("/v2/apps").json() == {"apps": []}  # nothing half-written


def test_a_partial_put_changes_only_the_given_fields(api: TestClient, master: Master) -> None:
    api.post("/v2/apps", json=APP)
    r = api.put("/v2/apps/lab/portal?force=true", json={"instances": 5})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"deploymentId", "version"}
    app = api.get("/v2/apps/lab/portal").json()["app"]
    assert app["instances"] == 5 and app["cmd"] == APP["cmd"] and app["labels"] == APP["labels"]
    assert master.services.get("/lab/portal").config == 1  # a scale: nothing restarts


def test_an_update_while_a_deployment_runs_is_locked_unless_forced(api: TestClient) -> None:
    api.post("/v2/apps", json=APP)
    r = api.put("/v2/apps/lab/portal", json={"cmd": "sleep 100"})
    assert r.status_code == 409 and "locked" in r.json()["message"]
    assert api.put("/v2/apps/lab/portal?force=true", json={"cmd": "sleep 100"}).status_code == 200


def test_versions_list_every_change_and_each_can_be_read(api: TestClient) -> None:
    api.post("/v2/apps", json=APP)
    api.put("/v2/apps/lab/portal?force=true", json={"instances": 3})
    versions = api.get("/v2/apps/lab/portal/versions").json()["versions"]
    assert len(versions) == 2
    old = api.get(f"/v2/apps/lab/portal/versions/{versions[1]}").json()
    assert old["instances"] == 2 and old["version"] == versions[1]


def test_apps_are_filtered_by_id_command_and_label(api: TestClient) -> None:
    api.post("/v2/apps", json=APP)
    api.post("/v2/apps", json={**APP, "id": "/db", "cmd": "postgres", "labels": {}})

    def ids(query: str) -> list[str]:
        return [a["id"] for a in api.get(f"/v2/apps{query}").json()["apps"]]

    assert ids("") == ["/db", "/lab/portal"]
    assert ids("?id=lab") == ["/lab/portal"]
    assert ids("?cmd=postgres") == ["/db"]
    assert ids("?label=team==physics") == ["/lab/portal"]
    assert ids("?label=team!=physics") == ["/db"]


def test_deployments_are_listed_and_a_forced_cancel_answers_202(api: TestClient) -> None:
    dep = api.post("/v2/apps", json=APP).json()["deployments"][0]["id"]
    listed = api.get("/v2/deployments").json()
    assert [d["id"] for d in listed] == [dep]
    assert listed[0]["affectedApps"] == ["/lab/portal"]
    assert listed[0]["steps"] == [
        {"actions": [{"action": "StartApplication", "app": "/lab/portal"}]}
    ]
    assert api.delete(f"/v2/deployments/{dep}?force=true").status_code == 202
    assert api.get("/v2/deployments").json() == []


def test_cancelling_a_creation_rolls_it_back_by_deleting_the_app(api: TestClient) -> None:
    dep = api.post("/v2/apps", json=APP).json()["deployments"][0]["id"]
    r = api.delete(f"/v2/deployments/{dep}")
    assert r.status_code == 200 and set(r.json()) == {"deploymentId", "version"}
    assert api.get("/v2/apps/lab/portal").status_code == 404


def test_a_group_deploys_its_apps_in_dependency_order(api: TestClient) -> None:
    group = {
        "id": "/lab",
        "apps": [
            {"id": "web", "cmd": "serve", "dependencies": ["/lab/db"]},
            {"id": "db", "cmd": "postgres"},
        ],
    }
    r = api.post("/v2/groups", json=group)
    assert r.status_code == 201, r.text
    (dep,) = api.get("/v2/deployments").json()
    assert [[a["app"] for a in s["actions"]] for s in dep["steps"]] == [["/lab/db"], ["/lab/web"]]
    root = api.get("/v2/groups").json()
    assert [g["id"] for g in root["groups"]] == ["/lab"]
    assert [a["id"] for a in root["groups"][0]["apps"]] == ["/lab/db", "/lab/web"]
    assert api.post("/v2/groups", json=group).status_code == 409


def test_deleting_an_app_answers_its_deployment_and_forgets_it(api: TestClient) -> None:
    api.post("/v2/apps", json=APP)
    r = api.delete("/v2/apps/lab/portal?force=true")
    assert r.status_code == 200 and "deploymentId" in r.json()
    assert api.get("/v2/apps/lab/portal").json()["message"] == "App '/lab/portal' does not exist"


def test_waiting_tasks_show_in_the_queue_with_their_count(api: TestClient, master: Master) -> None:
    api.post("/v2/apps", json=APP)
    settle(master)
    (item,) = api.get("/v2/queue").json()["queue"]
    assert item["app"]["id"] == "/lab/portal" and item["count"] == 2
    assert item["delay"]["overdue"] is True


def test_info_leader_and_ping_answer(api: TestClient, anonymous: TestClient) -> None:
    assert api.get("/v2/info").json()["elected"] is True
    assert "leader" in api.get("/v2/leader").json()
    assert anonymous.get("/ping").text == "pong"
    r = anonymous.get("/v2/apps")
    assert r.status_code == 401 and "message" in r.json()


def test_a_put_of_only_a_version_rolls_the_app_back_to_it(api: TestClient, master: Master) -> None:
    api.post("/v2/apps", json=APP)
    api.put("/v2/apps/lab/portal?force=true", json={"cmd": "sleep 100"})
    first = api.get("/v2/apps/lab/portal/versions").json()["versions"][-1]
    r = api.put("/v2/apps/lab/portal?force=true", json={"version": first})
    assert r.status_code == 200, r.text
    assert api.get("/v2/apps/lab/portal").json()["app"]["cmd"] == APP["cmd"]
    missing = api.put(
        "/v2/apps/lab/portal?force=true", json={"version": "1999-01-01T00:00:00.000Z"}
    )
    assert missing.status_code == 404
