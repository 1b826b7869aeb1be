"""What the native API answers: read models of jobs, runs, tasks, agents and events."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from corral.spec.jobs import JobSpec
from corral.spec.protocol import SandboxFile
from corral.spec.services import ServiceSpec
from corral.spec.states import AgentState, RunState, TaskState


class ResourcesView(BaseModel):
    """Resources in user units: cpus as a number, mem and disk in MiB."""

    cpus: float
    mem: int
    disk: int
    gpus: int = 0


class TaskEventView(BaseModel):
    """One state transition of a task."""

    id: int
    time: datetime
    state: TaskState
    reason: str
    agent_id: str | None = None


class TaskView(BaseModel):
    """A task: one attempt of one slot of a run, placed on at most one agent."""

    id: str
    job: str
    run: int
    slot: int
    index: int
    attempt: int
    state: TaskState
    reason: str = ""
    exit_code: int | None = None
    agent_id: str | None = None
    hostname: str | None = None
    ports: list[int] = Field(default_factory=list, description="Host ports (PORT0..n).")
    gpus: list[int] = Field(
        default_factory=list, description="The indices of the GPUs it was given on its agent."
    )
    command: list[str] | None = None
    shell: str | None = None
    resources: ResourcesView
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    not_before: datetime | None = Field(None, description="Set while a retry waits its backoff.")
    preempted_by: str | None = Field(
        None, description="The task it was stopped to make room for (it ends KILLED, requeued)."
    )
    requeues: int = Field(
        0, description="Earlier attempts of its slot that were preempted: no retry was used."
    )
    healthy: bool | None = Field(
        None, description="The last health check's verdict; null before one, or without checks."
    )
    health: str | None = Field(None, description="The last health check's message.")
    waiting: str | None = Field(None, description="Why a PENDING task is not placed yet.")
    events: list[TaskEventView] | None = None


class RunView(BaseModel):
    """One firing of a job and how far its tasks got."""

    job: str
    number: int
    state: RunState
    created_at: datetime
    finished_at: datetime | None = None
    total: int
    counts: dict[TaskState, int] = Field(
        description="Tasks per state, counting only the latest attempt of each slot."
    )


class FiringView(BaseModel):
    """One upcoming firing of a job's schedule."""

    at: datetime = Field(description="The instant, in UTC.")
    local: datetime = Field(description="The same instant in the schedule's time zone.")
    index: int | None = Field(None, description="Its number in an ISO schedule (from 0).")


class SkipView(BaseModel):
    """The newest record of firings not run: consecutive ones for one reason are one record."""

    time: datetime = Field(description="When the record was last extended.")
    reason: str
    count: int | None = Field(None, description="Firings skipped; null for cron spans.")
    first: datetime | None = Field(None, description="The first firing skipped.")
    last: datetime | None = Field(None, description="The last firing skipped.")


class JobView(BaseModel):
    """A job with its spec and a summary of its latest run."""

    name: str
    owner: str
    group: str = Field("", description="The group it counts to: its owner's when submitted.")
    spec: JobSpec
    created_at: datetime
    updated_at: datetime
    runs: int
    last_run: RunView | None = None
    success_count: int = 0
    error_count: int = 0
    last_success: datetime | None = None
    last_error: datetime | None = None
    next_run: datetime | None = Field(None, description="When the schedule fires next.")
    upcoming: list[FiringView] = Field(
        default_factory=list,
        description="The next firings (GET of one job: ?upcoming=N, 5 by default; none in lists).",
    )
    last_skip: SkipView | None = Field(None, description="The newest firings not run, and why.")
    remaining: int | None = Field(
        None, description="Firings left of an ISO schedule 'R<n>/...'; null when unlimited."
    )
    children: list[str] = Field(default_factory=list, description="Jobs that depend on it.")


class FailureView(BaseModel):
    """The last task of a service that ended when it should not have."""

    time: datetime
    task_id: str
    state: TaskState
    reason: str


class ServiceCounts(BaseModel):
    """A service's live tasks by condition."""

    staged: int = Field(0, description="Pending, staging or starting.")
    running: int = 0
    healthy: int = 0
    unhealthy: int = 0


class ServiceView(BaseModel):
    """A service: its desired state, and how far reality is from it."""

    id: str
    owner: str
    group: str = Field("", description="The group it counts to: its owner's when submitted.")
    spec: ServiceSpec
    version: str = Field(description="When the service last changed (ISO 8601).")
    config: int = Field(description="Number of the configuration new tasks run.")
    config_version: str = Field(description="When that configuration was set.")
    created_at: datetime
    updated_at: datetime
    counts: ServiceCounts
    deployments: list[str] = Field(default_factory=list, description="Running deployments.")
    delay_until: datetime | None = Field(
        None, description="Replacements wait until then: the restart backoff."
    )
    last_failure: FailureView | None = None
    waiting: str | None = Field(None, description="Why tasks wait to be placed, if they do.")


class ServiceVersionView(BaseModel):
    """One version of a service's spec."""

    version: str
    config: int
    created_at: datetime
    spec: ServiceSpec


class DeploymentAction(BaseModel):
    """What a deployment does to one service."""

    action: str = Field(
        description="StartApplication, ScaleApplication, RestartApplication or StopApplication."
    )
    service: str


class DeploymentView(BaseModel):
    """A change being rolled out over one or more services, step by step."""

    id: str
    version: str
    state: str = Field(description="RUNNING, SUCCEEDED or CANCELLED.")
    services: list[str]
    steps: list[list[DeploymentAction]]
    current_step: int = Field(description="1-based; the step being carried out.")
    created_at: datetime
    finished_at: datetime | None = None
    reason: str = ""


class GpuView(BaseModel):
    """One GPU of an agent, by NVML index, and the task holding it."""

    index: int
    model: str
    memory: int = Field(description="MiB; 0 when not known (GPUs declared by hand).")
    task: str | None = Field(None, description="The live task holding it; null: free.")


class AgentView(BaseModel):
    """A node as the master sees it."""

    id: str
    hostname: str
    state: AgentState
    connected: bool
    total: ResourcesView
    used: ResourcesView
    attributes: dict[str, str]
    drivers: list[str]
    registered_at: datetime
    last_heartbeat: datetime | None = None
    cgroups: str = Field("", description="Resource limits the agent can enforce, or why not.")
    gpus: list[GpuView] = Field(default_factory=list, description="Its GPUs, by index.")


class EventView(BaseModel):
    """One entry of the event log, as sent on /api/v1/events."""

    id: int
    time: datetime
    type: str
    job: str | None = None
    run: int | None = None
    task_id: str | None = None
    agent_id: str | None = None
    state: str | None = None
    reason: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class LogChunk(BaseModel):
    """A piece of a task's stdout or stderr (or another sandbox file), read on its agent.

    Files hold bytes: ``data`` is their text when they are UTF-8, else base64 of the bytes
    (``encoding`` says which), so nothing is replaced or lost on the way.
    """

    task_id: str
    file: str
    offset: int
    data: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    next_offset: int
    size: int
    complete: bool = Field(description="True once the task has ended and all was read.")

    @classmethod
    def of_bytes(
        cls, task_id: str, file: str, offset: int, raw: bytes, size: int, running: bool
    ) -> LogChunk:
        """The chunk of ``raw`` read at ``offset`` of a file of ``size`` bytes."""
        end = offset + len(raw)
        more = running or end < size
        encoding: Literal["utf-8", "base64"] = "utf-8"
        try:
            data = raw.decode()
        except UnicodeDecodeError as e:
            if more and e.reason == "unexpected end of data":
                # A character cut by the chunk's end: its first bytes come with the next read.
                data, end = raw[: e.start].decode(), offset + e.start
            else:
                data, encoding = base64.b64encode(raw).decode(), "base64"
        complete = not running and end >= size
        return cls(
            task_id=task_id,
            file=file,
            offset=offset,
            data=data,
            encoding=encoding,
            next_offset=end,
            size=size,
            complete=complete,
        )

    def content(self) -> bytes:
        """The bytes of the file this chunk holds."""
        return base64.b64decode(self.data) if self.encoding == "base64" else self.data.encode()


class SandboxView(BaseModel):
    """The files of a task's sandbox, on its agent."""

    task_id: str
    files: list[SandboxFile]
    truncated: bool = Field(False, description="The sandbox holds more files than listed.")


class ClusterInfo(BaseModel):
    """What /api/v1/info answers."""

    name: str = "corral"
    version: str
    leader: bool = True
    leader_url: str | None = Field(None, description="Where the leading master answers.")
    user: str | None = Field(None, description="Who the token belongs to.")
    role: str | None = Field(None, description="The role it acts with.")
    groups: list[str] = Field(default_factory=list, description="The user's groups.")


class UsageRowView(BaseModel):
    """What one user or group used in a window (``corral usage``)."""

    name: str = Field(description="The user or group ('' for the totals).")
    cpu_hours: float
    mem_gib_hours: float
    gpu_hours: float
    tasks: dict[str, int] = Field(
        description="Tasks that ended in the window, by outcome: finished, failed, killed, "
        "lost, preempted."
    )


class UsageView(BaseModel):
    """Accounting over a window: each user's or group's usage, and the totals."""

    since: datetime
    until: datetime
    by: Literal["user", "group"]
    rows: list[UsageRowView]
    total: UsageRowView
