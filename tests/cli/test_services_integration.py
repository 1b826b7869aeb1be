"""Services and deployments through the CLI against a real ``corral up``: tasks that serve
HTTP on their host port, health, scaling, killing, restarting, rolling back, failures."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.client import ApiError, Client
from corral.spec.views import ServiceView, TaskView
from tests.cli.harness import Corral, Server, ok
from tests.support.cluster import EventWatcher

pytestmark = pytest.mark.integration

DEADLINE = 60.0  # seconds for a deployment or a task to get where a test wants it


@pytest.fixture(scope="module")
def watcher(server: Server) -> Iterator[EventWatcher]:
    """Follows the cluster's events, to wait for conditions with a deadline."""
    w = EventWatcher(server.url, server.token)
    yield w
    w.close()


@pytest.fixture
def api(server: Server) -> Iterator[Client]:
    """A client of the native API, as the admin."""
    with Client(server.url, server.token) as client:
        yield client


@pytest.fixture
def service_id(request: pytest.FixtureRequest, api: Client) -> Iterator[str]:
    """A service id no other test uses; the service is deleted when the test ends, so that
    its tasks do not hold the agent's CPUs for the tests after it."""
    sid = f"/t/{request.node.name[5:30].strip('_').replace('_', '-')}-{secrets.token_hex(2)}"
    yield sid
    try:
        api.delete_service(sid, force=True)
    except ApiError as e:
        if e.status != 404:
            raise


def http_service(service_id: str, instances: int = 2, **extra: Any) -> dict[str, Any]:
    """A native service document: http.server on PORT0, checked over HTTP every second."""
    return {
        "kind": "service",
        "id": service_id,
        "instances": instances,
        "task": {"shell": "exec python3 -m http.server $PORT0", "cpus": 0.1, "mem": 64},
        "ports": [{"port": 0, "name": "http"}],
        "health_checks": [
            {"protocol": "HTTP", "path": "/", "grace_period": 30, "interval": 1, "timeout": 1}
            | {"delay": 0}
        ],
    } | extra


def sleeper(service_id: str, instances: int = 1, **extra: Any) -> dict[str, Any]:
    """A native service document of tasks that only sleep (no ports, no checks)."""
    return {
        "kind": "service",
        "id": service_id,
        "instances": instances,
        "task": {"command": ["sleep", "3600"], "cpus": 0.1, "mem": 32},
    } | extra


def stuck(service_id: str) -> dict[str, Any]:
    """A service whose deployment never ends: its HTTP check asks a port nobody listens on,
    and the long grace period keeps the task from being killed for it."""
    doc = http_service(service_id, instances=1)
    doc["task"]["shell"] = "exec sleep 3600"
    doc["health_checks"][0]["grace_period"] = 3600
    return doc


def write(tmp_path: Path, doc: object, name: str = "service.json") -> str:
    """Write a document as JSON; answers its path."""
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def live_tasks(api: Client, service_id: str, running: int) -> list[TaskView] | None:
    """The service's tasks once exactly ``running`` of them run and none waits, else None."""
    tasks = api.service_tasks(service_id)
    settled = len(tasks) == running and all(t.state == "RUNNING" for t in tasks)
    return tasks if settled else None


def test_apply_waits_until_the_tasks_are_healthy_and_they_answer_on_their_port(
    corral: Corral, api: Client, service_id: str, tmp_path: Path
) -> None:
    path = write(tmp_path, http_service(service_id))
    out = ok(corral("service", "apply", "-f", path, "--wait"))
    assert out.startswith(f"{service_id}: created (deployment ")
    assert f"of {service_id} SUCCEEDED in " in out

    [listed] = [s for s in json.loads(ok(corral("services", "--json"))) if s["id"] == service_id]
    assert listed["counts"] == {"staged": 0, "running": 2, "healthy": 2, "unhealthy": 0}
    shown = json.loads(ok(corral("service", "show", service_id.lstrip("/"), "--json")))
    tasks = shown["tasks"]
    assert len(tasks) == 2 and all(t["healthy"] for t in tasks)
    for task in tasks:
        [port] = task["ports"]
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    table = ok(corral("services"))
    assert service_id in table and "HEALTHY" in table
    text = ok(corral("service", "show", service_id))
    assert "2 wanted: 2 running, 0 staged, 2 healthy, 0 unhealthy" in text
    assert "HTTP PORT0 / every 1s" in text and str(tasks[0]["ports"][0]) in text

    assert ok(corral("service", "apply", "-f", path)) == f"{service_id}: unchanged\n"


def test_scale_kill_and_restart_change_the_tasks_as_asked(
    corral: Corral, api: Client, service_id: str, tmp_path: Path, watcher: EventWatcher
) -> None:
    ok(corral("service", "apply", "-f", write(tmp_path, sleeper(service_id)), "--wait"))
    out = ok(corral("service", "scale", service_id, "3", "--wait"))
    assert f"{service_id}: scaling to 3 (deployment " in out and "SUCCEEDED" in out
    first, second, third = watcher.wait_until(
        lambda: live_tasks(api, service_id, 3), DEADLINE, "3 tasks running"
    )

    out = ok(corral("service", "kill", service_id, first.id, "--scale"))
    assert out == f"{first.id}: killed; {service_id} runs one instance fewer\n"
    assert api.service(service_id).spec.instances == 2
    watcher.wait_until(lambda: live_tasks(api, service_id, 2), DEADLINE, "2 tasks left")

    out = ok(corral("service", "kill", service_id, second.id))
    assert out == f"{second.id}: killed; a new task of {service_id} replaces it\n"

    def replaced() -> list[TaskView] | None:
        tasks = live_tasks(api, service_id, 2)
        return tasks if tasks and second.id not in {t.id for t in tasks} else None

    assert third.id in {t.id for t in watcher.wait_until(replaced, DEADLINE, "a replacement")}

    ok(corral("service", "restart", service_id, "--wait"))
    tasks = watcher.wait_until(lambda: live_tasks(api, service_id, 2), DEADLINE, "restarted")
    assert {t.run for t in tasks} == {2}  # every task runs the new configuration
    versions = json.loads(ok(corral("service", "versions", service_id, "--json")))
    assert [v["spec"]["instances"] for v in versions][:3] == [2, 2, 3]


def test_a_deployment_that_cannot_end_holds_the_service_until_it_is_rolled_back(
    corral: Corral, api: Client, service_id: str, tmp_path: Path, watcher: EventWatcher
) -> None:
    out = ok(corral("service", "apply", "-f", write(tmp_path, stuck(service_id))))
    deployment = out.split("(deployment ")[1].rstrip(")\n")
    watcher.wait_until(lambda: live_tasks(api, service_id, 1), DEADLINE, "the task running")
    listed = json.loads(ok(corral("deployments", "--json")))
    assert deployment in [d["id"] for d in listed]
    assert deployment in ok(corral("deployments"))

    refused = corral("service", "scale", service_id, "2")
    assert refused.exit_code == 1
    assert deployment in refused.stderr and "From the CLI: --force." in refused.stderr

    out = ok(corral("deployment", "cancel", deployment, "--wait"))
    assert out.startswith(f"{deployment}: cancelled; deployment ")
    assert "SUCCEEDED" in out  # the rollback: a service that was new is removed again
    missing = corral("service", "show", service_id)
    assert missing.exit_code == 1 and "not found" in missing.stderr
    ended = json.loads(ok(corral("deployments", "--all", "--json")))
    [cancelled] = [d for d in ended if d["id"] == deployment]
    assert (cancelled["state"], cancelled["reason"]) == ("CANCELLED", "rolled back")


def test_a_forced_cancel_leaves_the_service_as_it_stands_until_it_is_deleted(
    corral: Corral, api: Client, service_id: str, tmp_path: Path, watcher: EventWatcher
) -> None:
    out = ok(corral("service", "apply", "-f", write(tmp_path, stuck(service_id))))
    deployment = out.split("(deployment ")[1].rstrip(")\n")
    watcher.wait_until(lambda: live_tasks(api, service_id, 1), DEADLINE, "the task running")

    out = ok(corral("deployment", "cancel", deployment, "--force"))
    assert out == f"{deployment}: cancelled where it stood\n"
    assert api.service(service_id).deployments == []
    assert len(api.service_tasks(service_id)) == 1

    out = ok(corral("service", "rm", service_id, "--wait"))
    assert f"{service_id}: deleting (deployment " in out and "SUCCEEDED" in out
    assert service_id not in ok(corral("services"))


def test_a_failing_service_shows_its_last_failure_and_its_backoff(
    corral: Corral, api: Client, service_id: str, tmp_path: Path, watcher: EventWatcher
) -> None:
    doc = sleeper(service_id, backoff={"seconds": 600})
    doc["task"] = {"shell": "echo broken >&2; exit 3", "cpus": 0.1, "mem": 32}
    ok(corral("service", "apply", "-f", write(tmp_path, doc)))

    def failed() -> ServiceView | None:
        view = api.service(service_id)
        return view if view.last_failure and view.delay_until else None

    view = watcher.wait_until(failed, DEADLINE, "a failure and its backoff")
    assert view.last_failure is not None and view.last_failure.state == "FAILED"
    [listed] = [s for s in json.loads(ok(corral("services", "--json"))) if s["id"] == service_id]
    assert listed["last_failure"]["task_id"] == view.last_failure.task_id
    text = ok(corral("service", "show", service_id))
    assert "backoff until" in text and "FAILED: exited with status 3" in text


def test_apply_takes_jobs_and_services_and_a_marathon_app_from_one_file(
    corral: Corral, api: Client, service_id: str, tmp_path: Path, job_name: str
) -> None:
    marathon_id = f"{service_id}-app"
    docs = [
        {"name": job_name, "task": {"command": ["true"], "mem": 32, "cpus": 0.1}},
        sleeper(service_id),
        {"id": marathon_id, "cmd": "exec sleep 3600", "cpus": 0.1, "mem": 32, "instances": 1},
    ]
    path = write(tmp_path, docs, "mixed.json")
    try:
        out = ok(corral("apply", "-f", path, "--wait")).splitlines()
        assert out[0] == f"{job_name}: created (run 1 started)"
        assert out[1].startswith(f"{service_id}: created (deployment ")
        assert out[2].startswith(f"{marathon_id}: created (deployment ")
        assert all("SUCCEEDED" in line for line in out[3:]) and len(out) == 5
        assert api.service(marathon_id).spec.task.shell == "exec sleep 3600"

        again = json.loads(ok(corral("apply", "-f", path, "--json")))
        assert [r["action"] for r in again] == ["unchanged"] * 3
    finally:
        api.delete_service(marathon_id, force=True)
