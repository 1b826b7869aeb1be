"""What the pages show, computed from the native API's views: a job's status and last result,
an array's progress, totals, cluster resource use, counts by state, recent failures, and how
far each service is from what it wants."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from corral.spec.states import AgentState, RunState, TaskState
from corral.spec.views import AgentView, DeploymentView, JobView, RunView, ServiceView

JobStatus = Literal["idle", "queued", "running"]
JOB_STATUSES: tuple[JobStatus, ...] = ("idle", "queued", "running")
Result = Literal["success", "failure"]

ACTIVE_STATES = frozenset({TaskState.STAGING, TaskState.STARTING, TaskState.RUNNING})
# Ends a user did not ask for; KILLED is left out because someone chose it.
FAILURE_STATES = frozenset({TaskState.FAILED, TaskState.ERROR, TaskState.LOST})
UNSUCCESSFUL_STATES = FAILURE_STATES | {TaskState.KILLED}


@dataclass(frozen=True)
class Progress:
    """How far the tasks of one run got: the segments of an array's progress bar."""

    total: int
    done: int
    running: int
    failed: int

    @property
    def waiting(self) -> int:
        """Tasks neither started nor ended (pending, or waiting for a retry)."""
        return max(self.total - self.done - self.running - self.failed, 0)

    def percent(self, part: int) -> float:
        """``part`` as a percentage of all tasks, for a bar segment's width."""
        return 0.0 if self.total == 0 else round(100 * part / self.total, 2)


def progress(run: RunView) -> Progress:
    """The progress of a run from its counts (latest attempt of each slot)."""
    counts = run.counts
    return Progress(
        total=run.total,
        done=counts.get(TaskState.FINISHED, 0),
        running=sum(counts.get(s, 0) for s in ACTIVE_STATES),
        failed=sum(counts.get(s, 0) for s in UNSUCCESSFUL_STATES),
    )


def job_status(job: JobView) -> JobStatus:
    """``running`` while a task of its latest run holds an agent, ``queued`` while the run waits
    for placement (or a retry), ``idle`` otherwise."""
    run = job.last_run
    if run is None or run.state.terminal:
        return "idle"
    return "running" if progress(run).running else "queued"


def last_result(job: JobView) -> Result | None:
    """The outcome of the newest run that has one, or None if none has ended yet."""
    run = job.last_run
    if run is not None and run.state.terminal:
        return "success" if run.state is RunState.SUCCEEDED else "failure"
    if job.last_success is not None and (
        job.last_error is None or job.last_success >= job.last_error
    ):
        return "success"
    return "failure" if job.last_error is not None else None


@dataclass(frozen=True)
class JobRow:
    """A job as one line of the jobs list."""

    job: JobView
    status: JobStatus
    result: Result | None
    progress: Progress | None  # only for arrays: runs of more than one task

    @property
    def recurring(self) -> bool:
        """A job that starts runs by itself (schedule or parents): the only kind worth
        disabling."""
        return self.job.spec.schedule is not None or bool(self.job.spec.parents)


def job_row(job: JobView) -> JobRow:
    """Status, last result and (for arrays) progress of a job."""
    run = job.last_run
    return JobRow(
        job=job,
        status=job_status(job),
        result=last_result(job),
        progress=progress(run) if run is not None and run.total > 1 else None,
    )


def filter_jobs(rows: Iterable[JobRow], q: str, status: str) -> list[JobRow]:
    """Rows whose name or owner contains ``q`` (any case) and whose status is ``status``
    (empty: any)."""
    needle = q.strip().lower()
    return [
        r
        for r in rows
        if (not needle or needle in r.job.name.lower() or needle in r.job.owner.lower())
        and (not status or r.status == status)
    ]


@dataclass(frozen=True)
class JobTotals:
    """The counters above the jobs list."""

    jobs: int
    failed: int
    running: int
    queued: int


def job_totals(rows: Sequence[JobRow]) -> JobTotals:
    """Totals over every job, whatever the filter."""
    return JobTotals(
        jobs=len(rows),
        failed=sum(r.result == "failure" for r in rows),
        running=sum(r.status == "running" for r in rows),
        queued=sum(r.status == "queued" for r in rows),
    )


@dataclass(frozen=True)
class Usage:
    """One resource, allocated vs total: a bar of the overview or of an agent."""

    key: str
    label: str
    used: float
    total: float
    unit: str  # "cpus", "MiB" or "gpus": the template formats MiB

    @property
    def percent(self) -> float:
        """Allocated share of the total, 0-100."""
        return 0.0 if self.total <= 0 else min(round(100 * self.used / self.total, 1), 100.0)


def usage(agents: Iterable[AgentView]) -> list[Usage]:
    """CPU, GPU, memory and disk allocated vs total, summed over the given agents."""
    chosen = list(agents)
    used = [a.used for a in chosen]
    total = [a.total for a in chosen]
    return [
        Usage("cpus", "CPU", round(sum(r.cpus for r in used), 3), sum(r.cpus for r in total), ""),
        Usage("gpus", "GPU", sum(r.gpus for r in used), sum(r.gpus for r in total), ""),
        Usage("mem", "Memory", sum(r.mem for r in used), sum(r.mem for r in total), "MiB"),
        Usage("disk", "Disk", sum(r.disk for r in used), sum(r.disk for r in total), "MiB"),
    ]


def connected(agents: Iterable[AgentView]) -> list[AgentView]:
    """The agents whose resources count: those connected right now."""
    return [a for a in agents if a.connected]


def agent_counts(agents: Iterable[AgentView]) -> dict[AgentState, int]:
    """Agents per state, every state present."""
    counts = dict.fromkeys(AgentState, 0)
    for a in agents:
        counts[a.state] += 1
    return counts


# --- services

ServiceStatus = Literal["healthy", "deploying", "degraded", "suspended"]


@dataclass(frozen=True)
class ServiceRow:
    """A service as one line of the services list."""

    service: ServiceView
    ready: int  # tasks that count towards ``instances``: healthy, or running without checks
    status: ServiceStatus

    @property
    def checked(self) -> bool:
        """The service has health checks: healthy and unhealthy counts mean something."""
        return bool(self.service.spec.health_checks)

    @property
    def fully_healthy(self) -> bool:
        """As many ready tasks as wanted, and none unhealthy."""
        return self.ready >= self.service.spec.instances and not self.service.counts.unhealthy

    @property
    def percent_ready(self) -> float:
        """Ready tasks as a share of those wanted, 0-100, for the row's bar."""
        wanted = self.service.spec.instances
        return 100.0 if wanted == 0 else min(round(100 * self.ready / wanted, 2), 100.0)


def service_row(service: ServiceView) -> ServiceRow:
    """How far a service is from what it wants: ``deploying`` while a deployment holds it,
    ``suspended`` at 0 instances with nothing left running, ``healthy`` with every wanted task
    ready, ``degraded`` otherwise (tasks waiting, failing or unhealthy)."""
    c = service.counts
    ready = c.healthy if service.spec.health_checks else c.running
    status: ServiceStatus
    if service.deployments:
        status = "deploying"
    elif service.spec.instances == 0 and not (c.running or c.staged):
        status = "suspended"
    elif ready >= service.spec.instances and not c.unhealthy:
        status = "healthy"
    else:
        status = "degraded"
    return ServiceRow(service=service, ready=ready, status=status)


@dataclass(frozen=True)
class ServiceTotals:
    """The counters above the services list and on the overview."""

    services: int
    healthy: int
    deploying: int
    degraded: int


def service_totals(rows: Sequence[ServiceRow]) -> ServiceTotals:
    """Totals over every service."""
    return ServiceTotals(
        services=len(rows),
        healthy=sum(r.fully_healthy for r in rows),
        deploying=sum(r.status == "deploying" for r in rows),
        degraded=sum(r.status == "degraded" for r in rows),
    )


def deployments_of(service_id: str, deployments: Iterable[DeploymentView]) -> list[DeploymentView]:
    """The deployments that touch one service, in the order given."""
    return [d for d in deployments if service_id in d.services]
