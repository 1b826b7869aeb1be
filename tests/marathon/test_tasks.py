"""Marathon's tasks on a simulated cluster: what /v2/tasks, an app's tasks and the event stream
show of them while an agent (simulated, told what to report) runs them."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient
from marathon.models.endpoint import MarathonEndpoint  # type: ignore[import-untyped]
from marathon.models.task import MarathonTask  # type: ignore[import-untyped]

from corral.spec.accounts import UserChange
from corral.spec.states import TaskState
from tests.marathon.simulated import (
    APP,
    client,
    marathon_stream,
    report,
    running_app,
    settle,
    sim,
)
from tests.master.sim import Sim

__all__ = ["client", "sim"]  # the fixtures


def test_waiting_instances_are_only_in_the_queue_never_tasks(sim: Sim, client: TestClient) -> None:
    client.post("/v2/apps", json={**APP, "instances": 2, "cpus": 8})  # node1 has 4 cpus
    settle(sim)
    assert client.get("/v2/tasks").json() == {"tasks": []}
    assert client.get("/v2/tasks?status=delayed").json() == {"tasks": []}
    app = client.get("/v2/apps/lab/portal").json()["app"]
    assert (app["tasks"], app["tasksStaged"], app["tasksRunning"]) == ([], 0, 0)
    (item,) = client.get("/v2/queue").json()["queue"]
    assert item["count"] == 2


def test_a_placed_task_is_staged_and_listed(sim: Sim, client: TestClient) -> None:
    client.post("/v2/apps", json=APP)
    settle(sim)
    (task,) = client.get("/v2/tasks").json()["tasks"]
    assert task["state"] == "TASK_STAGING" and task["host"] == "node1"
    assert client.get("/v2/apps/lab/portal").json()["app"]["tasksStaged"] == 1


def test_service_ports_match_the_ports_so_the_clients_endpoints_work(
    sim: Sim, client: TestClient
) -> None:
    tid = running_app(sim, client)
    (task,) = client.get("/v2/tasks").json()["tasks"]
    assert task["ports"] == [31000, 31001] and len(task["servicePorts"]) == 2
    endpoints = MarathonEndpoint.from_tasks([MarathonTask.from_json(task)])
    assert [(e.task_id, e.host, e.task_port) for e in endpoints] == [
        (tid, "node1", 31000),
        (tid, "node1", 31001),
    ]


def test_a_status_update_event_carries_the_tasks_ports(sim: Sim, client: TestClient) -> None:
    tid = running_app(sim, client)
    (running,) = [
        e
        for e in marathon_stream(sim)
        if e["eventType"] == "status_update_event" and e["taskStatus"] == "TASK_RUNNING"
    ]
    assert (running["taskId"], running["ports"]) == (tid, [31000, 31001])


def test_events_of_a_deleted_app_keep_its_version(sim: Sim, client: TestClient) -> None:
    tid = running_app(sim, client)
    version = client.get("/v2/apps/lab/portal").json()["app"]["version"]
    assert client.delete("/v2/apps/lab/portal?force=true").status_code == 200
    settle(sim)
    sim.confirm_kills()
    killed = [
        e
        for e in marathon_stream(sim)
        if e.get("taskId", e.get("instanceId")) == tid
        and e["eventType"] in ("status_update_event", "instance_changed_event")
        and "Killed" in (e.get("taskStatus", "") + e.get("condition", "")).title()
    ]
    assert killed and all(e.get("version", e.get("runSpecVersion")) == version for e in killed), (
        killed
    )


def test_the_last_task_failure_names_its_host_and_agent(sim: Sim, client: TestClient) -> None:
    tid = running_app(sim, client)
    report(sim, tid, TaskState.FAILED, reason="exited with status 1", exit_code=1)
    app = client.get("/v2/apps/lab/portal").json()["app"]
    failure = app["lastTaskFailure"]
    assert (failure["taskId"], failure["host"], failure["slaveId"]) == (tid, "node1", "node1")
    assert failure["state"] == "TASK_FAILED"


def test_tasks_are_listed_by_status_and_killed_with_scale(sim: Sim, client: TestClient) -> None:
    client.post("/v2/apps", json={**APP, "instances": 3})
    settle(sim)
    tasks = client.get("/v2/tasks").json()["tasks"]
    assert len(tasks) == 3
    assert client.get("/v2/tasks?status=running").json()["tasks"] == []
    assert len(client.get("/v2/tasks?status=staging").json()["tasks"]) == 3
    assert client.get("/v2/tasks?status=bogus").status_code == 400
    r = client.post("/v2/tasks/delete?scale=true&force=true", json={"ids": [tasks[0]["id"]]})
    assert r.status_code == 200 and "deploymentId" in r.json()
    assert sim.master.services.get("/lab/portal").spec.instances == 2


def test_tasks_as_text_are_marathons_tab_separated_listing(sim: Sim, client: TestClient) -> None:
    tid = running_app(sim, client)
    asyncio.run(sim.add_agent("node2"))
    client.post("/v2/apps", json={"id": "/batch/worker", "cmd": "sleep 1000", "ports": []})
    settle(sim)
    (worker,) = sim.live("/batch/worker")
    report(sim, worker.id, TaskState.RUNNING)
    client.post("/v2/apps", json={**APP, "id": "/waiting", "cpus": 64})  # never placed
    text = "text/plain"
    listing = client.get("/v2/tasks", headers={"Accept": text})
    assert listing.status_code == 200 and listing.headers["content-type"].startswith(text)
    host = sim.master.state.agents[worker.agent_id or ""].hostname
    assert listing.text == (
        f"batch_worker\t \t{host}\t\n"
        "lab_portal\t0\tnode1:31000\t\n"
        "lab_portal\t0\tnode1:31001\t\n"
        "waiting\t0\t\n"
        "waiting\t0\t\n"
    )
    one = client.get("/v2/apps/lab/portal/tasks", headers={"Accept": text})
    assert one.text == "lab_portal\t0\tnode1:31000\t\nlab_portal\t0\tnode1:31001\t\n"
    # A haproxy-marathon-bridge reads each line as: app, service port, then backends.
    name, port, *backends = one.text.splitlines()[0].split()
    assert (name, port, backends) == ("lab_portal", "0", ["node1:31000"])
    assert client.get("/v2/tasks").json()["tasks"][0]["id"] in (tid, worker.id)


def test_the_queue_counts_the_agents_the_last_plan_declined_by_marathons_reasons(
    sim: Sim, client: TestClient
) -> None:
    client.post("/v2/apps", json={**APP, "cpus": 8})  # node1 has 4 cpus
    settle(sim)
    (item,) = client.get("/v2/queue").json()["queue"]
    summary = item["processedOffersSummary"]
    assert (summary["processedOffersCount"], summary["unusedOffersCount"]) == (1, 1)
    funnel = {
        r["reason"]: (r["processed"], r["declined"]) for r in summary["rejectSummaryLastOffers"]
    }
    assert funnel["UnfulfilledConstraint"] == (1, 0)
    assert funnel["InsufficientCpus"] == (1, 1)
    assert funnel["InsufficientMemory"] == (0, 0)


def test_an_app_over_its_owners_quota_is_declined_by_every_agent_for_its_role(
    sim: Sim, client: TestClient
) -> None:
    sim.master.accounts.change_user("admin", UserChange(quota_cpus=0.1))
    client.post("/v2/apps", json=APP)  # 0.25 cpus
    settle(sim)
    (item,) = client.get("/v2/queue").json()["queue"]
    summary = item["processedOffersSummary"]
    assert (summary["processedOffersCount"], summary["unusedOffersCount"]) == (1, 1)
    funnel = {
        r["reason"]: (r["processed"], r["declined"]) for r in summary["rejectSummaryLastOffers"]
    }
    assert funnel["UnfulfilledRole"] == (1, 1)
    assert funnel["InsufficientCpus"] == (0, 0)
    (task,) = sim.live(APP["id"])
    assert task.waiting == "quota: user admin at 0/0.1 cpus"
