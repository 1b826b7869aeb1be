"""Acceptance: Marathon's own Python client (PyPI ``marathon``) against a real cluster.

Real master and agents; the app is ``python3 -m http.server`` on its host port, checked over
HTTP by the agents. Waits are on state with deadlines, never sleeps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import requests
from marathon import MarathonApp, MarathonClient  # type: ignore[import-untyped]
from marathon.exceptions import MarathonError, MarathonHttpError  # type: ignore[import-untyped]
from marathon.models.app import MarathonHealthCheck  # type: ignore[import-untyped]

from tests.support.cluster import Cluster

pytestmark = pytest.mark.integration
T = TypeVar("T")
APP_ID = "/lab/portal"
CMD = "exec python3 -m http.server $PORT0 --bind 127.0.0.1"


def wait(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling the API: the client has no way to wait on a change


class Events:
    """Marathon events from /v2/events, consumed by the client in a thread."""

    def __init__(self, client: MarathonClient) -> None:
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._follow, args=(client,), daemon=True)
        self._thread.start()

    def _follow(self, client: MarathonClient) -> None:
        try:
            for raw in client.event_stream(raw=True):
                with self._lock:
                    self.seen.append(json.loads(raw))
        except (MarathonError, requests.RequestException):
            pass  # the stream ends with the master, when the test is over

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.seen if e["eventType"] == kind]


@pytest.fixture
def marathon(cluster: Cluster) -> Iterator[MarathonClient]:
    cluster.add_agents(["m1", "m2", "m3"], cpus=2, mem=2048)
    yield MarathonClient(cluster.url, username="admin", password=cluster.token)


def healthy_tasks(client: MarathonClient, n: int) -> Callable[[], list[Any] | None]:
    def check() -> list[Any] | None:
        app = client.get_app(APP_ID, embed_tasks=True)
        tasks = [
            t
            for t in app.tasks
            if t.state == "TASK_RUNNING"
            and t.health_check_results
            and all(h.alive for h in t.health_check_results)
        ]
        return tasks if len(tasks) == n and len(app.tasks) == n and not app.deployments else None

    return check


def healthy_without(client: MarathonClient, gone: set[str]) -> Callable[[], list[Any] | None]:
    """Three healthy tasks, none of them in ``gone``."""

    def check() -> list[Any] | None:
        tasks = healthy_tasks(client, 3)()
        return tasks if tasks and not gone & {t.id for t in tasks} else None

    return check


def test_the_marathon_client_runs_an_app_through_its_whole_life(
    cluster: Cluster, marathon: MarathonClient
) -> None:
    events = Events(marathon)
    wait(lambda: events.of("event_stream_attached"), 10, "the event stream")
    check = MarathonHealthCheck(
        protocol="HTTP",
        path="/",
        port_index=0,
        grace_period_seconds=10,
        interval_seconds=1,
        timeout_seconds=1,
        max_consecutive_failures=3,
    )
    app = MarathonApp(cmd=CMD, instances=2, cpus=0.1, mem=64, health_checks=[check])
    created = marathon.create_app(APP_ID, app)
    assert created.id == APP_ID and created.instances == 2

    # Running and healthy; each answers HTTP on the host port it was given.
    tasks = wait(healthy_tasks(marathon, 2), 60, "2 healthy tasks")
    assert all(len(t.ports) == 1 and t.ports[0] > 0 for t in tasks)

    # Each check has its own record, with real times.
    results = [r for t in tasks for r in t.health_check_results]
    assert len(results) == 2 and all(r.consecutive_failures == 0 for r in results)
    assert all(r.last_success and r.first_success for r in results)

    # Scale to 3; the client's endpoints are each task's host and port.
    marathon.scale_app(APP_ID, instances=3)
    tasks = wait(healthy_tasks(marathon, 3), 60, "3 healthy tasks")
    endpoints = [e for e in marathon.list_endpoints() if e.app_id == APP_ID]
    assert sorted((e.host, e.task_port) for e in endpoints) == sorted(
        (t.host, t.ports[0]) for t in tasks
    )

    # Kill one: it is replaced.
    victim = tasks[0].id
    marathon.kill_task(APP_ID, victim)
    tasks = wait(healthy_without(marathon, {victim}), 60, "the killed task replaced")
    old_ids = {t.id for t in tasks}

    # A new command rolls out: old tasks stop only once new ones are healthy.
    current = marathon.get_app(APP_ID)
    current.cmd = CMD + " # v2"
    marathon.update_app(APP_ID, current)
    tasks = wait(healthy_without(marathon, old_ids), 90, "the rolling upgrade")
    assert min_healthy_during_upgrade(cluster, old_ids) >= 3
    failed = [e.task_id for e in cluster.events() if e.job == APP_ID and e.state == "FAILED"]
    assert failed == []  # every task ran until asked to stop

    versions = marathon.list_versions(APP_ID)
    assert len(versions) >= 3  # created, scaled, changed

    # The event stream saw the tasks start and the deployments end.
    updates = events.of("status_update_event")
    assert any(e["appId"] == APP_ID and e["taskStatus"] == "TASK_RUNNING" for e in updates)
    assert events.of("deployment_success") and events.of("health_status_changed_event")

    # An invalid app is refused with the field named.
    with pytest.raises(MarathonHttpError) as err:
        marathon.create_app("/lab/bad", MarathonApp(cmd="true", cpus=-1, mem=64))
    assert err.value.status_code == 422
    assert any(d["path"] == "/cpus" for d in err.value.error_details)

    marathon.delete_app(APP_ID)
    wait(lambda: not marathon.list_apps() and not marathon.list_tasks(), 60, "the app gone")


def min_healthy_during_upgrade(cluster: Cluster, old_ids: set[str]) -> int:
    """Replay the event log from the first new task: the fewest healthy, live tasks at once."""
    live_healthy: set[str] = set()
    started = False
    lowest = 10**6
    for ev in cluster.events():
        if not (ev.job == APP_ID and ev.task_id):
            continue
        if ev.type == "task_health":
            if ev.data.get("healthy"):
                live_healthy.add(ev.task_id)
            else:
                live_healthy.discard(ev.task_id)
        elif ev.type == "task_state" and ev.state in ("FINISHED", "FAILED", "KILLED", "LOST"):
            live_healthy.discard(ev.task_id)
        if ev.task_id not in old_ids and ev.type == "task_state" and ev.state == "PENDING":
            started = started or bool(old_ids & live_healthy)
        if started:
            lowest = min(lowest, len(live_healthy))
    return lowest
