"""The native service spec: a long-running workload kept at ``instances`` healthy tasks.

Service ids are Marathon app ids: absolute paths of lower-case DNS labels (``/portal``,
``/lab/db``). A bare ``portal`` means ``/portal``. Job names cannot start with ``/``, so jobs and
services never share a name where tasks refer to their owner.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from corral.scheduler.model import Strategy
from corral.spec import limits
from corral.spec.docker import NoNul, ShortText
from corral.spec.jobs import ConstraintSpec, TaskTemplate, require_valid_unicode

_LABEL = r"(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])"
_SEGMENT = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}$")
MAX_INSTANCES = limits.MAX_INSTANCES
COMMAND_DELAY = 15.0  # Marathon's delaySeconds: seconds before a command check's first run


def normalize_service_id(raw: str, base: str = "/") -> str:
    """``raw`` as an absolute service id, relative ids resolved against ``base`` (a group).

    Raises ValueError naming the rule a segment breaks.
    """
    if not raw or not raw.strip("/"):
        raise ValueError("id must name the service")
    path = raw if raw.startswith("/") else f"{base.rstrip('/')}/{raw}"
    parts: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not parts:
                raise ValueError(f"id {raw!r} goes above the root group")
            parts.pop()
            continue
        if not _SEGMENT.fullmatch(seg):
            raise ValueError(
                f"id segment {seg!r} must be lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit"
            )
        parts.append(seg)
    if not parts:
        raise ValueError("id must name the service")
    ident = "/" + "/".join(parts)
    if len(ident) > 100:
        raise ValueError("id is longer than 100 characters")
    return ident


ServiceId = Annotated[str, AfterValidator(normalize_service_id)]


class PortSpec(BaseModel):
    """A host port each task needs. ``port`` 0 is any free port of the agent's range; with
    ``require_ports`` a non-zero ``port`` is that exact host port."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(0, ge=0, le=65535)
    # Marathon allows dashes ("http-api"); the variable is PORT_HTTP_API.
    name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    protocol: Literal["tcp", "udp"] = "tcp"
    labels: dict[str, str] = Field(default_factory=dict)


class HealthCheckSpec(BaseModel):
    """A check the agent runs against each task, Marathon's fields with Marathon's defaults."""

    model_config = ConfigDict(extra="forbid")

    protocol: Literal["HTTP", "HTTPS", "TCP", "COMMAND"] = "HTTP"
    path: ShortText = Field("/", description="HTTP(S): the path asked; 2xx and 3xx are healthy.")
    port_index: int | None = Field(
        None, ge=0, description="Which of the task's host ports to check (default the first)."
    )
    port: int | None = Field(None, ge=1, le=65535, description="A fixed port to check instead.")
    command: Annotated[str, AfterValidator(limits.command_line)] | None = Field(
        None, description="COMMAND: a shell command; exit 0 is healthy."
    )
    grace_period: float = Field(
        300.0, ge=0, le=86400, description="Seconds after start in which failures do not count."
    )
    interval: float = Field(60.0, gt=0, le=86400, description="Seconds between checks.")
    timeout: float = Field(20.0, gt=0, le=86400, description="Seconds a check may take.")
    max_consecutive_failures: int = Field(
        3, ge=0, le=1000, description="Failures in a row before the task is killed (0: never)."
    )
    ignore_http_1xx: bool = False
    delay: float = Field(
        0.0,
        ge=0,
        le=86400,
        description="Seconds before the first check (default 15 for COMMAND checks, else 0).",
    )

    @model_validator(mode="before")
    @classmethod
    def _command_delay(cls, data: Any) -> Any:
        # As in Marathon, only a command (which Mesos ran) waits 15 s before its first check;
        # a network check starts at once, its grace period covering a slow start.
        if isinstance(data, dict) and "delay" not in data and data.get("protocol") == "COMMAND":
            return {**data, "delay": COMMAND_DELAY}
        return data

    @model_validator(mode="after")
    def _fields_fit_protocol(self) -> HealthCheckSpec:
        if self.protocol == "COMMAND":
            if not self.command or not self.command.strip():
                raise ValueError("a COMMAND health check needs 'command'")
        elif self.command is not None:
            raise ValueError(f"'command' is for COMMAND health checks, not {self.protocol}")
        if self.port is not None and self.port_index is not None:
            raise ValueError("give 'port' or 'port_index', not both")
        if not self.path.startswith("/"):
            raise ValueError("path must start with '/'")
        return self


class HealthCheckStatus(BaseModel):
    """One health check's record of one task, kept by the agent that runs the check (what
    Marathon shows as one of ``healthCheckResults``). Times are wall-clock seconds since the
    epoch; a failure within the grace period is not recorded."""

    alive: bool | None = None  # the latest recorded result; None before the first
    consecutive_failures: int = Field(0, ge=0)
    first_success: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    last_failure_cause: str | None = None


_UNHEALTHY = re.compile(r"^failed \d+ health checks? in a row: ")


def unhealthy_reason(count: int, message: str) -> str:
    """Why a task is killed after ``count`` failed health checks in a row."""
    checks = "health check" if count == 1 else "health checks"
    return f"failed {count} {checks} in a row: {message}"


def is_unhealthy_kill(reason: str) -> bool:
    """Whether a task ended with ``reason`` was killed for failing its health checks."""
    return _UNHEALTHY.match(reason) is not None


class BackoffSpec(BaseModel):
    """How long to wait before replacing a task that failed: ``seconds`` after the first
    failure, times ``factor`` per further failure in a row, at most ``max_launch_delay``."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(1.0, ge=0, le=86400)
    factor: float = Field(1.15, ge=1.0, le=100)
    max_launch_delay: float = Field(300.0, ge=0, le=86400)


class UpgradeStrategy(BaseModel):
    """How a new version replaces the old: at least ``minimum_health_capacity`` × instances
    stay healthy, and at most ``maximum_over_capacity`` × instances extra tasks run."""

    model_config = ConfigDict(extra="forbid")

    minimum_health_capacity: float = Field(1.0, ge=0, le=1)
    maximum_over_capacity: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _can_progress(self) -> UpgradeStrategy:
        if self.minimum_health_capacity == 1 and self.maximum_over_capacity == 0:
            raise ValueError(
                "minimum_health_capacity 1 with maximum_over_capacity 0 leaves no room to "
                "replace a task: lower the first or raise the second"
            )
        return self


class ServiceSpec(BaseModel):
    """A long-running workload: ``instances`` copies of one task, replaced when they fail."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        return require_valid_unicode(data)

    kind: Literal["service"] = "service"
    id: ServiceId
    owner: str | None = Field(None, max_length=100, description="Defaults to the caller.")
    description: str = Field("", max_length=10_000)
    instances: int = Field(1, ge=0, le=MAX_INSTANCES)
    task: TaskTemplate
    ports: list[PortSpec] = Field(
        default_factory=list, description="Host ports per task (PORT0..n, PORT_<name>)."
    )
    require_ports: bool = Field(False, description="Non-zero ports are exact host ports.")
    health_checks: list[HealthCheckSpec] = Field(default_factory=list, max_length=10)
    backoff: BackoffSpec = Field(default_factory=BackoffSpec)
    upgrade: UpgradeStrategy = Field(default_factory=UpgradeStrategy)
    constraints: list[ConstraintSpec] = Field(default_factory=list)
    placement: Strategy = Strategy.SPREAD
    priority: int = Field(0, ge=-1000, le=1000)
    preemptible: bool = Field(
        False,
        description="With preemption on, a user below their fair share may stop its tasks "
        "(they are replaced as any stopped task); a service's tasks are safe otherwise.",
    )
    labels: dict[NoNul, NoNul] = Field(default_factory=dict)
    dependencies: list[ServiceId] = Field(
        default_factory=list, description="Services deployed before this one (in one group)."
    )
    group_dependencies: dict[str, list[str]] = Field(
        default_factory=dict,
        description="What each Marathon group the service is in depends on, as the group "
        "gave it (its services are in 'dependencies' already): kept so that the group reads "
        "back with them, and a change of the group that leaves them out keeps them.",
    )

    @field_validator("task")
    @classmethod
    def _runs_forever(cls, v: TaskTemplate) -> TaskTemplate:
        if v.max_runtime is not None:
            raise ValueError("a service runs until stopped: max_runtime is for jobs")
        return v

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not key or len(key) > 255:
                raise ValueError("label keys are 1 to 255 characters")
        return v

    @model_validator(mode="after")
    def _ports_consistent(self) -> ServiceSpec:
        names = [n for n in self.all_port_names() if n]
        if len(set(names)) != len(names):
            raise ValueError("two ports have the same name")
        docker = self.task.docker
        if docker is not None and docker.network == "BRIDGE" and self.ports:
            raise ValueError(
                "a BRIDGE container publishes ports with docker.port_mappings, not 'ports'"
            )
        fixed = [p.port for p in self.ports if p.port]
        if self.require_ports and len(set(fixed)) != len(fixed):
            raise ValueError("a required host port is given twice")
        for i, check in enumerate(self.health_checks):
            if check.protocol == "COMMAND" or check.port is not None:
                continue
            index = check.port_index or 0
            if index >= self.port_count():
                raise ValueError(
                    f"health_checks[{i}].port_index {index} names no port: the task has "
                    f"{self.port_count()}"
                )
        if self.id in self.dependencies:
            raise ValueError("a service cannot depend on itself")
        if limits.admitting():
            limits.copies_fit(len(self.task.model_dump_json()), self.instances, "instances")
        return self

    def all_port_names(self) -> list[str | None]:
        """The names of the task's host ports, in PORT0..n order."""
        docker = self.task.docker
        if docker is not None and docker.network == "BRIDGE":
            return [m.name for m in docker.port_mappings]
        return [p.name for p in self.ports]

    def port_count(self) -> int:
        """How many host ports each task gets."""
        return len(self.all_port_names())

    @classmethod
    def stored(cls, doc: Any) -> ServiceSpec:
        """A spec read back from the store: admitted when written, so rules added since (sizes,
        NUL bytes) do not make it unreadable."""
        with limits.reading_stored():
            return cls.model_validate(doc)

    def same_config(self, other: ServiceSpec) -> bool:
        """True when only ``instances`` differs (a scale, which restarts nothing) or what the
        service's groups depend on (kept for the groups: nothing its tasks run)."""
        keep = {"instances": other.instances, "group_dependencies": other.group_dependencies}
        return self.model_copy(update=keep) == other
