"""Answers whose exact shape Marathon's clients and scripts rely on."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from corral.master.master import Master
from corral.spec.marathon import app_to_spec, spec_to_app

V = "2024-05-01T12:00:00.000Z"
APP: dict[str, Any] = {"id": "/lab/portal", "cmd": "sleep 1000", "cpus": 0.25, "mem": 64}


def settle(master: Master) -> None:
    asyncio.run(master.service_loop.run_once())


def test_the_queue_answers_whole_seconds_left_and_the_offers_processed(
    api: TestClient, master: Master
) -> None:
    api.post("/v2/apps", json={**APP, "instances": 2})
    settle(master)
    asyncio.run(master.scheduler.run_once())  # no agent: each instance says why it waits
    master.services.services["/lab/portal"].delay_until = master.state.clock.now() + 2.5
    (item,) = api.get("/v2/queue").json()["queue"]
    assert item["delay"] == {"timeLeftSeconds": 2, "overdue": False}
    summary = item["processedOffersSummary"]
    assert summary["processedOffersCount"] == 0 and summary["unusedOffersCount"] == 0
    reasons = summary["rejectSummaryLastOffers"]
    assert reasons and all(
        isinstance(r["reason"], str) and r["declined"] == 0 and r["processed"] == 0 for r in reasons
    )


def test_invalid_json_is_a_400_in_marathons_words(api: TestClient) -> None:
    for method in ("post", "put"):
        r = api.request(
            method,
            "/v2/apps" if method == "post" else "/v2/apps/lab/portal",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["message"] == "Invalid JSON" and body["details"][0]["path"] == "/"


def test_the_conflict_of_a_locked_app_lists_its_deployments(api: TestClient) -> None:
    created = api.post("/v2/apps", json=APP)
    r = api.put("/v2/apps/lab/portal", json={"cmd": "sleep 100"})
    assert r.status_code == 409
    body = r.json()
    assert body["deployments"] == [{"id": created.headers["Marathon-Deployment-Id"]}]
    assert "locked" in body["message"]


def test_a_method_marathon_does_not_have_is_a_405_with_a_message(api: TestClient) -> None:
    r = api.request("PATCH", "/v2/info")
    assert r.status_code == 405
    assert r.json() == {"message": "HTTP 405 Method Not Allowed"}
    missing = api.get("/v2/nothing-here")
    assert missing.status_code == 404 and set(missing.json()) == {"message"}


def test_the_is_operator_reads_back_as_is() -> None:
    doc = {**APP, "constraints": [["rack", "IS", "a"], ["zone", "CLUSTER", "b"]]}
    answered = spec_to_app(app_to_spec(doc), version=V, config_version=V)
    assert answered["constraints"] == [["rack", "IS", "a"], ["zone", "CLUSTER", "b"]]
    assert app_to_spec(answered) == app_to_spec(doc)


def test_tasks_see_the_apps_labels_in_their_environment(api: TestClient, master: Master) -> None:
    labels = {"team": "physics", "HAPROXY_0.vhost": "portal.lab", "long": "x" * 600}
    api.post("/v2/apps", json={**APP, "labels": labels})
    settle(master)
    (task,) = master.state.tasks.values()
    env = task.launch.env
    assert env["MARATHON_APP_LABELS"] == "TEAM HAPROXY_0_VHOST"
    assert env["MARATHON_APP_LABEL_TEAM"] == "physics"
    assert env["MARATHON_APP_LABEL_HAPROXY_0_VHOST"] == "portal.lab"
    assert not any(name.endswith("LONG") for name in env)


def test_the_kill_grace_period_is_unset_unless_given(api: TestClient) -> None:
    api.post("/v2/apps", json=APP)
    app = api.get("/v2/apps/lab/portal").json()["app"]
    assert app.get("taskKillGracePeriodSeconds") is None
    api.put("/v2/apps/lab/portal?force=true", json={"taskKillGracePeriodSeconds": 30})
    app = api.get("/v2/apps/lab/portal").json()["app"]
    assert app["taskKillGracePeriodSeconds"] == 30
