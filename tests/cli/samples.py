"""Views as the master would send them, for tests that fake the master with httpx.MockTransport."""

from __future__ import annotations

from datetime import UTC, datetime

from corral.spec.jobs import JobSpec, TaskTemplate
from corral.spec.states import RunState, TaskState
from corral.spec.views import JobView, RunView

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
