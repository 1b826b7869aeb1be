"""Health checks as Marathon users write them: what is accepted, and when checking starts."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from corral.spec.marathon import app_to_spec, spec_to_app
from corral.spec.services import HealthCheckSpec, HealthCheckStatus, unhealthy_reason
from corral.spec.states import TaskState
from tests.marathon.simulated import APP, client, marathon_stream, report, running_app, sim
from tests.master.sim import Sim

__all__ = ["client", "sim"]  # the fixtures

JSON = dict[str, Any]
V = "2024-05-01T12:00:00.000Z"


def app(*checks: JSON) -> JSON:
    return {"id": "/web", "cmd": "python3 -m http.server $PORT0", "healthChecks": list(checks)}


def test_a_check_giving_only_its_interval_is_accepted_with_marathons_other_defaults(
    api: TestClient,
) -> None:
    r = api.post("/v2/apps", json=app({"intervalSeconds": 10}))
    assert r.status_code == 201, r.text
    (check,) = r.json()["healthChecks"]
    assert (check["intervalSeconds"], check["timeoutSeconds"]) == (10, 20)


def test_a_timeout_longer_than_the_interval_is_accepted_as_public_examples_give_it() -> None:
    spec = app_to_spec(
        app(
            {
                "protocol": "COMMAND",
                "command": {"value": "curl -I http://localhost:$PORT0"},
                "gracePeriodSeconds": 180,
                "intervalSeconds": 10,
                "timeoutSeconds": 20,
                "maxConsecutiveFailures": 3,
            }
        )
    )
    (check,) = spec.health_checks
    assert (check.interval, check.timeout) == (10, 20)


def test_http_and_tcp_checks_start_at_once_even_with_the_delay_marathon_exports() -> None:
    exported = {"gracePeriodSeconds": 300, "intervalSeconds": 60, "delaySeconds": 15}
    spec = app_to_spec(
        app(
            {"protocol": "HTTP", **exported},
            {"protocol": "TCP", **exported},
            {"protocol": "HTTPS", **exported},
            {"protocol": "COMMAND", "command": {"value": "true"}},
        )
    )
    assert [h.delay for h in spec.health_checks] == [0, 0, 0, 15]


def test_a_mesos_check_keeps_its_delay_and_reads_back_as_a_mesos_check() -> None:
    spec = app_to_spec(app({"protocol": "MESOS_HTTP", "path": "/ok", "delaySeconds": 5}))
    assert spec.health_checks[0].delay == 5
    answered = spec_to_app(spec, version=V, config_version=V)
    assert answered["healthChecks"][0]["protocol"] == "MESOS_HTTP"
    assert app_to_spec(answered) == spec


def test_a_native_check_waits_only_when_it_runs_a_command() -> None:
    assert HealthCheckSpec(protocol="TCP").delay == 0
    assert HealthCheckSpec(protocol="COMMAND", command="true").delay == 15
    assert HealthCheckSpec(protocol="HTTP", delay=3).delay == 3


CHECKED = {
    **APP,
    "healthChecks": [
        {"protocol": "HTTP", "path": "/", "portIndex": 0, "maxConsecutiveFailures": 2},
        {"protocol": "TCP", "portIndex": 1},
    ],
}
T0 = 1_800_000_000.0  # the simulated clock's now


def test_health_check_results_have_one_entry_per_check_with_its_record(
    sim: Sim, client: TestClient
) -> None:
    tid = running_app(sim, client, CHECKED)
    http = HealthCheckStatus(
        alive=False,
        consecutive_failures=2,
        first_success=T0,
        last_success=T0 + 10,
        last_failure=T0 + 30,
        last_failure_cause="HTTP 500 from :31000/",
    )
    tcp = HealthCheckStatus(alive=True, first_success=T0, last_success=T0 + 30)
    report(sim, tid, TaskState.RUNNING, healthy=False, checks=[http, tcp])
    (task,) = client.get("/v2/apps/lab/portal/tasks").json()["tasks"]
    first, second = task["healthCheckResults"]
    assert first == {
        "alive": False,
        "consecutiveFailures": 2,
        "firstSuccess": "2027-01-15T08:00:00.000Z",
        "lastSuccess": "2027-01-15T08:00:10.000Z",
        "lastFailure": "2027-01-15T08:00:30.000Z",
        "lastFailureCause": "HTTP 500 from :31000/",
        "taskId": tid,
        "instanceId": tid,
    }
    assert (second["alive"], second["consecutiveFailures"], second["lastFailure"]) == (
        True,
        0,
        None,
    )
    app = client.get("/v2/apps/lab/portal").json()["app"]
    assert (app["tasksHealthy"], app["tasksUnhealthy"]) == (0, 1)


def test_failed_checks_and_the_kill_they_cause_are_marathon_events(
    sim: Sim, client: TestClient
) -> None:
    tid = running_app(sim, client, CHECKED)
    version = client.get("/v2/apps/lab/portal").json()["app"]["version"]
    ok = HealthCheckStatus(alive=True, first_success=T0, last_success=T0)
    records = []
    for n in (1, 2):
        bad = HealthCheckStatus(
            alive=False,
            consecutive_failures=n,
            first_success=T0,
            last_success=T0,
            last_failure=T0 + 10 * n,
            last_failure_cause="HTTP 500 from :31000/",
        )
        records.append(bad)
        report(sim, tid, TaskState.RUNNING, healthy=False if n == 1 else None, checks=[bad, ok])
    report(sim, tid, TaskState.RUNNING, checks=[records[-1], ok])  # a refresh: nothing new
    reason = unhealthy_reason(2, "HTTP 500 from :31000/")
    report(sim, tid, TaskState.KILLED, reason=reason)
    stream = marathon_stream(sim)
    failed = [e for e in stream if e["eventType"] == "failed_health_check_event"]
    assert [(e["taskId"], e["version"], e["timestamp"]) for e in failed] == [
        (tid, version, "2027-01-15T08:00:10.000Z"),
        (tid, version, "2027-01-15T08:00:20.000Z"),
    ]
    assert failed[0]["appId"] == "/lab/portal"
    assert failed[0]["healthCheck"]["protocol"] == "HTTP"
    assert failed[0]["healthCheck"]["maxConsecutiveFailures"] == 2
    (kill,) = [e for e in stream if e["eventType"] == "unhealthy_instance_kill_event"]
    assert (kill["appId"], kill["taskId"], kill["reason"], kill["host"], kill["slaveId"]) == (
        "/lab/portal",
        tid,
        reason,
        "node1",
        "node1",
    )
    assert kill["version"] == version
    # Reports of health are no new states: the task became RUNNING once.
    running = [e for e in stream if e.get("taskStatus") == "TASK_RUNNING"]
    assert len(running) == 1
