"""Health checks as Marathon users write them: what is accepted, and when checking starts."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from corral.spec.marathon import app_to_spec, spec_to_app
from corral.spec.services import HealthCheckSpec

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
