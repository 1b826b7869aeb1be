"""The service commands without a real master: what they send, print and refuse."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from corral.cli.main import app
from corral.cli.service_views import failure_text, step_text, waiting_text
from corral.spec.states import TaskState
from corral.spec.views import DeploymentAction, FailureView
from tests.cli.fake_master import Handler, serving
from tests.cli.samples import T0, deployment_view, service_spec, service_view
from tests.cli.test_cli_input import nowhere
from tests.support.cluster import free_port

# Where cli() sends requests: the fake master a test installed, else a port nobody listens on.
_master_url: str | None = None


@pytest.fixture
def master(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Handler], list[httpx.Request]]]:
    """Point the CLI at a fake master answering with a handler; returns the requests seen."""
    with ExitStack() as servers:

        def install(handle: Handler) -> list[httpx.Request]:
            seen: list[httpx.Request] = []

            def record(request: httpx.Request) -> httpx.Response:
                seen.append(request)
                return handle(request)

            url = servers.enter_context(serving(record))
            monkeypatch.setattr(sys.modules[__name__], "_master_url", url)
            return seen

        yield install


def cli(*args: str) -> Result:
    """Run the CLI against the fake master."""
    url = _master_url or f"http://127.0.0.1:{free_port()}"
    return CliRunner().invoke(app, ["--url", url, *args])


def test_apply_of_a_new_service_puts_it_and_names_the_deployment(
    master: Callable[[Handler], list[httpx.Request]], tmp_path: Path
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404, json={"detail": "service '/web' not found"})
        return httpx.Response(201, json=deployment_view().model_dump(mode="json"))

    seen = master(handle)
    path = tmp_path / "web.yaml"
    path.write_text("id: web\ntask: {shell: 'python3 -m http.server $PORT0'}\nports: [{}]\n")
    result = cli("service", "apply", "-f", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == "/web: created (deployment d-1)\n"
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/api/v1/services/web"),
        ("PUT", "/api/v1/services/web"),
    ]
    assert json.loads(seen[1].content)["ports"] == [{"port": 0, "protocol": "tcp", "labels": {}}]


def test_applying_the_spec_a_service_already_has_sends_nothing(
    master: Callable[[Handler], list[httpx.Request]], tmp_path: Path
) -> None:
    spec = service_spec()
    seen = master(lambda r: httpx.Response(200, json=service_view(spec).model_dump(mode="json")))
    path = tmp_path / "web.json"
    path.write_text(spec.model_dump_json())
    result = cli("apply", "-f", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == "/web: unchanged\n"
    assert [r.method for r in seen] == ["GET"]


def test_a_change_of_instances_only_is_reported_as_a_scale(
    master: Callable[[Handler], list[httpx.Request]], tmp_path: Path
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=service_view().model_dump(mode="json"))
        scaled = deployment_view(action="ScaleApplication")
        return httpx.Response(200, json=scaled.model_dump(mode="json"))

    master(handle)
    path = tmp_path / "web.json"
    path.write_text(service_spec(instances=5).model_dump_json())
    result = cli("service", "apply", "-f", str(path), "--json")
    assert result.exit_code == 0, result.output
    [applied] = json.loads(result.stdout)
    assert (applied["kind"], applied["action"]) == ("service", "scaled")
    assert applied["deployment"]["id"] == "d-1"


def test_a_locked_service_names_the_clis_force_option(
    master: Callable[[Handler], list[httpx.Request]],
) -> None:
    detail = "App is locked by one or more deployments. Override with the option '?force=true'."
    master(lambda r: httpx.Response(409, json={"detail": detail}))
    result = cli("service", "scale", "web", "3")
    assert result.exit_code == 1
    assert result.stderr == f"error: {detail} From the CLI: --force.\n"


def test_a_forced_cancel_says_the_deployment_stopped_where_it_stood(
    master: Callable[[Handler], list[httpx.Request]],
) -> None:
    seen = master(lambda r: httpx.Response(202, json=None))
    result = cli("deployment", "cancel", "d-1", "--force")
    assert result.exit_code == 0, result.output
    assert result.stdout == "d-1: cancelled where it stood\n"
    assert dict(seen[0].url.params) == {"force": "true"}


def test_service_apply_refuses_a_job_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text("- kind: job\n  name: sweep\n  task: {command: ['true']}\n")
    result = nowhere("service", "apply", "-f", str(path))
    assert result.exit_code == 2
    assert "sweep: a job, not a service; `corral apply -f` takes jobs and services" in result.stderr


def test_an_invalid_service_spec_names_the_field_before_any_request(tmp_path: Path) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text(
        "- name: ok\n  task: {command: ['true']}\n"
        "- kind: service\n  id: web\n  task: {command: ['true']}\n"
        "  health_checks: [{protocol: HTTP, port_index: 1}]\n"
    )
    result = nowhere("apply", "-f", str(path))
    assert result.exit_code == 2
    assert f"{path}[1]: Value error, health_checks[0].port_index 1 names no port" in result.stderr


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("kind: pod\nname: x\n")
    result = nowhere("apply", "-f", str(path))
    assert result.exit_code == 2
    assert "kind 'pod' is neither 'job' nor 'service'" in result.stderr


def test_the_waiting_column_joins_the_backoff_and_the_placement_reason() -> None:
    view = service_view().model_copy(
        update={"delay_until": T0 + timedelta(seconds=5), "waiting": "0/1 agents fit"}
    )
    assert waiting_text(view).startswith("backoff until ")
    assert waiting_text(view).endswith("; 0/1 agents fit")
    assert waiting_text(service_view()) == ""


def test_the_last_failure_names_its_state_reason_and_task() -> None:
    failure = FailureView(time=T0, task_id="web.x", state=TaskState.FAILED, reason="exit 3")
    assert failure_text(failure).endswith(" FAILED: exit 3 (web.x)")
    assert failure_text(None) == ""


def test_the_step_shown_is_the_current_one_of_all() -> None:
    two = deployment_view().model_copy(
        update={
            "steps": [
                [DeploymentAction(action="StopApplication", service="/old")],
                [DeploymentAction(action="StartApplication", service="/web")],
            ],
            "current_step": 2,
        }
    )
    assert step_text(two) == "2/2 StartApplication /web"
