"""Views as the master would send them, for tests that fake the master (``fake_master``, or
httpx.MockTransport for the async client)."""

from __future__ import annotations

from datetime import UTC, datetime

from corral.spec.jobs import JobSpec, TaskTemplate
from corral.spec.services import ServiceSpec
from corral.spec.states import RunState, TaskState
from corral.spec.views import (
    DeploymentAction,
    DeploymentView,
    JobView,
    RunView,
    ServiceCounts,
    ServiceView,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def run_view(job: str = "j", state: RunState = RunState.RUNNING, total: int = 2) -> RunView:
    """Run 1 of ``job``; its tasks are all finished once the state is SUCCEEDED."""
    done = total if state == RunState.SUCCEEDED else 0
    counts = {TaskState.FINISHED: done, TaskState.RUNNING: total - done}
    return RunView(job=job, number=1, state=state, created_at=T0, total=total, counts=counts)


def job_view(name: str = "j") -> JobView:
    """A job with one run in progress."""
    spec = JobSpec(name=name, task=TaskTemplate(command=["true"]))
    return JobView(
        name=name,
        owner="ada",
        spec=spec,
        created_at=T0,
        updated_at=T0,
        runs=1,
        last_run=run_view(name),
    )


def service_spec(service_id: str = "/web", instances: int = 2) -> ServiceSpec:
    """A service of ``instances`` http.server tasks on PORT0."""
    return ServiceSpec.model_validate(
        {
            "id": service_id,
            "instances": instances,
            "task": {"shell": "python3 -m http.server $PORT0", "cpus": 0.1, "mem": 32},
            "ports": [{"port": 0}],
        }
    )


def deployment_view(
    service: str = "/web", action: str = "StartApplication", state: str = "RUNNING"
) -> DeploymentView:
    """A one-step deployment of one service."""
    return DeploymentView(
        id="d-1",
        version="2025-01-02T03:04:05.000Z",
        state=state,
        services=[service],
        steps=[[DeploymentAction(action=action, service=service)]],
        current_step=1,
        created_at=T0,
    )


def service_view(spec: ServiceSpec | None = None) -> ServiceView:
    """A service with every wanted task running."""
    spec = spec or service_spec()
    return ServiceView(
        id=spec.id,
        owner="ada",
        spec=spec,
        version="2025-01-02T03:04:05.000Z",
        config=1,
        config_version="2025-01-02T03:04:05.000Z",
        created_at=T0,
        updated_at=T0,
        counts=ServiceCounts(running=spec.instances),
    )
