"""Marathon groups as its users change them: scaling, versions, dependencies that belong to the
group, and what a group embeds."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from corral.master.master import Master
from corral.spec.states import TaskState
from tests.marathon.simulated import client, report, settle, sim
from tests.master.sim import Sim

__all__ = ["client", "sim"]  # the fixtures

LAB: dict[str, Any] = {
    "id": "/lab",
    "dependencies": ["/shared"],
    "apps": [
        {"id": "web", "cmd": "serve", "instances": 2, "cpus": 0.1, "mem": 16},
        {"id": "api", "cmd": "api", "instances": 3, "cpus": 0.1, "mem": 16},
    ],
}
SHARED: dict[str, Any] = {
    "id": "/shared",
    "apps": [{"id": "db", "cmd": "postgres", "cpus": 0.1, "mem": 16}],
}


def instances(master: Master) -> dict[str, int]:
    return {sid: rec.spec.instances for sid, rec in sorted(master.services.services.items())}


def test_a_group_is_scaled_by_a_factor_rounding_up(api: TestClient, master: Master) -> None:
    api.post("/v2/groups", json=SHARED)
    assert api.post("/v2/groups", json=LAB).status_code == 201
    r = api.put("/v2/groups/lab?force=true", json={"scaleBy": 1.5})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"deploymentId", "version"}
    assert instances(master) == {"/lab/api": 5, "/lab/web": 3, "/shared/db": 1}
    assert master.services.get("/lab/web").config == 1  # a scale restarts nothing


def test_a_group_lists_the_versions_its_apps_were_changed_at(api: TestClient) -> None:
    api.post("/v2/groups", json=SHARED)
    created = api.post("/v2/groups", json=LAB).json()["version"]
    scaled = api.put("/v2/groups/lab?force=true", json={"scaleBy": 2}).json()["version"]
    api.post("/v2/apps", json={"id": "/other", "cmd": "x"})
    r = api.get("/v2/groups/lab/versions")
    assert r.status_code == 200
    assert r.json() == [scaled, created]
    assert api.get("/v2/groups/nothing/versions").status_code == 404


def test_a_groups_dependencies_are_its_own_and_a_put_omitting_them_keeps_them(
    api: TestClient, master: Master
) -> None:
    api.post("/v2/groups", json=SHARED)
    api.post("/v2/groups", json=LAB)
    lab = api.get("/v2/groups/lab").json()
    assert lab["dependencies"] == ["/shared"]
    changed = {"id": "/lab", "apps": [*LAB["apps"], {"id": "worker", "cmd": "work"}]}
    assert api.put("/v2/groups/lab?force=true", json=changed).status_code == 200
    assert api.get("/v2/groups/lab").json()["dependencies"] == ["/shared"]
    for sid in ("/lab/web", "/lab/api", "/lab/worker"):
        assert master.services.get(sid).spec.dependencies == ["/shared/db"], sid
    assert master.services.get("/lab/web").config == 1  # the kept dependency changed nothing
    cleared = {**changed, "dependencies": []}
    assert api.put("/v2/groups/lab?force=true", json=cleared).status_code == 200
    assert api.get("/v2/groups/lab").json()["dependencies"] == []
    assert master.services.get("/lab/worker").spec.dependencies == []


def test_a_subgroup_put_keeps_what_its_enclosing_groups_depend_on(
    api: TestClient, master: Master
) -> None:
    api.post("/v2/groups", json=SHARED)
    sim_group = {"id": "sim", "apps": LAB["apps"]}
    nested = {"id": "/lab", "dependencies": ["/shared"], "groups": [sim_group]}
    assert api.post("/v2/groups", json=nested).status_code == 201, nested
    body = {"apps": [{"id": "extra", "cmd": "x", "cpus": 0.1, "mem": 16}]}
    assert api.put("/v2/groups/lab/sim?force=true", json=body).status_code == 200
    assert master.services.get("/lab/sim/extra").spec.dependencies == ["/shared/db"]
    assert api.get("/v2/groups/lab").json()["dependencies"] == ["/shared"]


def test_a_group_embeds_its_apps_tasks_counts_failures_and_stats(
    sim: Sim, client: TestClient
) -> None:
    assert client.post("/v2/groups", json=SHARED).status_code == 201
    settle(sim)
    (task,) = sim.live("/shared/db")
    report(sim, task.id, TaskState.RUNNING)
    plain = client.get("/v2/groups/shared").json()["apps"][0]
    assert "tasks" not in plain and "taskStats" not in plain
    embeds = "embed=group.apps.tasks&embed=group.apps.counts&embed=group.apps.taskStats"
    embeds += "&embed=group.apps.lastTaskFailure"
    app = client.get(f"/v2/groups/shared?{embeds}").json()["apps"][0]
    assert [t["id"] for t in app["tasks"]] == [task.id]
    assert (app["tasksRunning"], app["tasksStaged"]) == (1, 0)
    counts = app["taskStats"]["totalSummary"]["stats"]["counts"]
    assert counts == {"staged": 0, "running": 1, "healthy": 0, "unhealthy": 0}
    assert "withLatestConfig" in app["taskStats"]
    report(sim, task.id, TaskState.FAILED, reason="exited with status 1")
    root = client.get(f"/v2/groups?{embeds}").json()
    (shared,) = root["groups"]
    assert shared["apps"][0]["lastTaskFailure"]["taskId"] == task.id
    asyncio.run(sim.settle())


def test_giving_a_group_the_dependencies_its_apps_have_restarts_nothing(
    api: TestClient, master: Master
) -> None:
    api.post("/v2/groups", json=SHARED)
    web = {"id": "/lab/web", "cmd": "serve", "cpus": 0.1, "mem": 16}
    api.post("/v2/apps", json={**web, "dependencies": ["/shared/db"]})
    group = {"id": "/lab", "dependencies": ["/shared"], "apps": [{**web, "id": "web"}]}
    assert api.put("/v2/groups/lab?force=true", json=group).status_code == 200
    assert api.get("/v2/groups/lab").json()["dependencies"] == ["/shared"]
    assert master.services.get("/lab/web").config == 1


def test_a_put_of_only_a_group_version_deletes_nothing(api: TestClient, master: Master) -> None:
    api.post("/v2/groups", json=SHARED)
    r = api.put("/v2/groups/shared?force=true", json={"version": "2024-05-01T12:00:00.000Z"})
    assert r.status_code == 422 and r.json()["details"][0]["path"] == "/version"
    assert "/shared/db" in master.services.services
