"""Chronos job JSON, and its translation to and from Corral's native job.

A Chronos job is one command (through ``/bin/sh -c`` or as argv), optionally in a Docker
container, fired by an ISO 8601 schedule or by the success of its parents. It becomes a
``JobSpec`` of one task; answers go back as Chronos writes them. Errors name the Chronos field
(``cpus``, ``container.volumes[0].hostPath``), never the native one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from corral.scheduler.model import Operator
from corral.spec.jobs import NAME_PATTERN, JobSpec, TaskTemplate
from corral.spec.views import JobView

# Chronos' documented defaults (docs/api.md "Job Configuration", SchedulerConfiguration):
# --mesos_task_cpu 0.1, --mesos_task_mem 128 MB, --mesos_task_disk 256 MB, --task_epsilon 60 s,
# retries 2, shell true. Chronos also reads 0 resources as "use the default".
DEFAULT_CPUS = 0.1
DEFAULT_MEM = 128
DEFAULT_DISK = 256
DEFAULT_EPSILON = 60.0
DEFAULT_RETRIES = 2

Kind = Literal["iso8601", "dependency"]
Loc = Sequence[str | int]

_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
_NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or digit, 100 at most"
_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


class Invalid(ValueError):
    """A Chronos job that Corral refuses: each problem is a Chronos field name and why."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in self.problems))


class _Lenient(BaseModel):
    # Chronos ignores fields it does not know, and clients post back what GET answered
    # (successCount, lastError, executor...): unknown fields are ignored here too. A null is
    # the same as an absent field, as Chronos' deserializer reads it.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class EnvironmentVariable(_Lenient):
    """One ``environmentVariables`` entry."""

    name: str
    value: str = ""

    @field_validator("value", mode="before")
    @classmethod
    def _scalar_as_text(cls, v: Any) -> Any:
        # Jackson reads a number given for a string field as its text; so does Corral.
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


class Volume(_Lenient):
    """A host path mounted into the container."""

    container_path: str = Field(alias="containerPath")
    host_path: str = Field(alias="hostPath")
    mode: str = "RW"


class Parameter(_Lenient):
    """An extra ``docker run`` option."""

    key: str
    value: str = ""


class Container(_Lenient):
    """Chronos' ``container`` object."""

    type: str = "DOCKER"
    image: str = ""
    network: str = "BRIDGE"
    volumes: list[Volume] = Field(default_factory=list)
    force_pull_image: bool = Field(False, alias="forcePullImage")
    parameters: list[Parameter] = Field(default_factory=list)


class ChronosJob(_Lenient):
    """A job as Chronos' ``/scheduler/iso8601`` and ``/scheduler/dependency`` accept it."""

    name: str
    command: str = ""
    shell: bool = True
    arguments: list[str] = Field(default_factory=list)
    schedule: str = ""
    schedule_time_zone: str = Field("", alias="scheduleTimeZone")
    parents: list[str] = Field(default_factory=list)
    epsilon: str = ""
    retries: int = Field(DEFAULT_RETRIES, ge=0)
    owner: str = ""
    owner_name: str = Field("", alias="ownerName")
    description: str = ""
    disabled: bool = False
    concurrent: bool = False
    soft_error: bool = Field(False, alias="softError")
    async_: bool = Field(False, alias="async")
    # Numbers or numeric strings ("0.5", "512"): pydantic reads both as a float.
    cpus: float = Field(DEFAULT_CPUS, ge=0, allow_inf_nan=False)
    mem: float = Field(DEFAULT_MEM, ge=0, allow_inf_nan=False)
    disk: float = Field(DEFAULT_DISK, ge=0, allow_inf_nan=False)
    # Not in Chronos' released API: the optional field of its GPU proposal (mesos/chronos#810).
    gpus: int = Field(0, ge=0)
    environment_variables: list[EnvironmentVariable] = Field(
        default_factory=list, alias="environmentVariables"
    )
    constraints: list[list[str]] = Field(default_factory=list)
    uris: list[str] = Field(default_factory=list)
    fetch: list[Any] = Field(default_factory=list)
    run_as_user: str = Field("", alias="runAsUser")
    container: Container | None = None


def parse_duration(text: str) -> float:
    """Seconds of an ISO 8601 duration of weeks, days, hours, minutes and seconds."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or not any(m.groupdict().values()) or text.strip().endswith("T"):
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration of days, hours, minutes or seconds "
            "(such as PT60S or P1DT12H)"
        )
    return sum(float(v) * _SECONDS[k] for k, v in m.groupdict().items() if v)


def format_duration(seconds: float) -> str:
    """An ISO 8601 duration in seconds, as Chronos writes epsilon (``PT60S``)."""
    return f"PT{int(seconds)}S" if seconds == int(seconds) else f"PT{seconds:g}S"


# --- Chronos job -> JobSpec


def parse_job(body: Any) -> ChronosJob:
    """Read a posted body as a Chronos job; ``Invalid`` names the fields that are wrong."""
    if not isinstance(body, dict):
        raise Invalid([("", "the body must be a JSON object (a Chronos job)")])
    try:
        return ChronosJob.model_validate(body)
    except ValidationError as e:
        raise Invalid([(_dotted(err["loc"]), _message(err)) for err in e.errors()]) from None


def to_spec(job: ChronosJob, kind: Kind) -> JobSpec:
    """The native job a Chronos job means. ``Invalid`` names the Chronos fields at fault."""
    problems = _unsupported(job) + _trigger_problems(job, kind)
    epsilon = DEFAULT_EPSILON
    if job.epsilon.strip():
        try:
            epsilon = parse_duration(job.epsilon)
        except ValueError as e:
            problems.append(("epsilon", str(e)))
    task, task_problems = _task(job)
    problems += task_problems
    if problems:
        raise Invalid(problems)
    spec: dict[str, Any] = {
        "name": job.name,
        "owner": job.owner or None,
        "description": job.description,
        "task": task,
        "retries": job.retries,
        "constraints": [_constraint(c) for c in job.constraints],
        "epsilon": epsilon,
        "disabled": job.disabled,
        "concurrent": job.concurrent,
        "soft_error": job.soft_error,
    }
    if kind == "iso8601":
        spec["schedule"] = in_zone(job.schedule.strip(), job.schedule_time_zone)
        spec["timezone"] = job.schedule_time_zone or "UTC"
    else:
        spec["parents"] = job.parents
    try:
        return JobSpec.model_validate(spec)
    except ValidationError as e:
        raise Invalid([(chronos_field(err["loc"]), _message(err)) for err in e.errors()]) from None


def in_zone(schedule: str, zone: str) -> str:
    """The schedule with its start's offset dropped when ``scheduleTimeZone`` is given: Chronos
    documents that the zone takes precedence (it keeps the start's wall-clock fields), and
    writes starts back with ``Z``, so ``2027-01-10T02:00:00Z`` in Europe/Berlin is 02:00 there."""
    parts = schedule.split("/")
    if not zone or len(parts) != 3 or not parts[1]:
        return schedule
    try:
        start = datetime.fromisoformat(parts[1])
    except ValueError:
        return schedule  # the native parser names what is wrong with it
    wall = start.replace(tzinfo=None)
    try:
        if start.tzinfo is None or wall.replace(tzinfo=ZoneInfo(zone)) == start:
            return schedule  # the same instant either way: kept as posted
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return schedule  # the native spec names the unknown zone
    return "/".join((parts[0], wall.isoformat(), parts[2]))


def name_instead(name: str) -> str:
    """A job name Corral accepts for a Chronos name it does not (spaces, '#')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-_.")[:100] or "job"


def _unsupported(job: ChronosJob) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not job.name:
        found.append(("name", "must not be empty"))
    elif not re.fullmatch(NAME_PATTERN, job.name):
        # Names end up in task ids, sandbox paths and URLs, where spaces, '#' and '/' break.
        found.append(
            ("name", f"{job.name!r}: {_NAME_RULE}; use {name_instead(job.name)!r} instead")
        )
    if job.async_:
        found.append(("async", "async jobs are not supported"))
    why = "Corral does not download files into the sandbox; use an image or a volume"
    if job.uris:
        found.append(("uris", f"not supported: {why}"))
    if job.fetch:
        found.append(("fetch", f"not supported: {why}"))
    return found


def _trigger_problems(job: ChronosJob, kind: Kind) -> list[tuple[str, str]]:
    """A job of /iso8601 has a schedule and no parents; one of /dependency the reverse."""
    if kind == "iso8601":
        if job.parents:
            return [("parents", "a job with parents is posted to /scheduler/dependency")]
        if not job.schedule.strip():
            return [("schedule", "required: an ISO 8601 repeating interval R[n]/[start]/period")]
        if not job.schedule.strip().startswith("R"):
            return [("schedule", f"{job.schedule!r} is not an ISO 8601 repeating interval")]
        return []
    if job.schedule.strip():
        return [("schedule", "a dependent job has parents, not a schedule")]
    if not job.parents:
        return [("parents", "required: the jobs this one runs after")]
    return []


def _task(job: ChronosJob) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The task template and what is wrong with the command, container or user."""
    problems: list[tuple[str, str]] = []
    task: dict[str, Any] = {
        "cpus": job.cpus or DEFAULT_CPUS,
        # Chronos counts MB as a double; a fraction is rounded up, so a task never gets less.
        "mem": math.ceil(job.mem) or DEFAULT_MEM,
        "disk": math.ceil(job.disk) or DEFAULT_DISK,
        "gpus": job.gpus,
        "env": {e.name: e.value for e in job.environment_variables},
    }
    if job.command.strip():
        # shell: true runs the line with /bin/sh -c and, as Chronos documents, ignores
        # ``arguments``; shell: false runs command with arguments as argv, unchanged.
        if job.shell:
            task["shell"] = job.command
        else:
            task["command"] = [job.command, *job.arguments]
    elif job.container is None:
        problems.append(("command", "required: what the job runs"))
    if job.container is not None:
        docker, docker_problems = _docker(job.container, job.run_as_user)
        task["docker"] = docker
        problems += docker_problems
    elif job.run_as_user:
        problems.append(("runAsUser", "runAsUser is supported for container jobs only"))
    return task, problems


def _docker(c: Container, user: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    if c.type.upper() != "DOCKER":
        problems.append(("container.type", f"{c.type!r} is not supported; use DOCKER"))
    if not c.image.strip():
        problems.append(("container.image", "required: the image to run"))
    if c.network.upper() not in ("BRIDGE", "HOST"):
        problems.append(("container.network", f"{c.network!r} is not supported; BRIDGE or HOST"))
    volumes = []
    for i, v in enumerate(c.volumes):
        if v.mode.upper() not in ("RO", "RW"):
            problems.append((f"container.volumes[{i}].mode", f"{v.mode!r} is not RO or RW"))
        volumes.append(
            {"containerPath": v.container_path, "hostPath": v.host_path, "mode": v.mode.upper()}
        )
    docker = {
        "image": c.image,
        "user": user or None,
        "network": c.network.upper(),
        "volumes": volumes,
        "forcePullImage": c.force_pull_image,
        "parameters": [{"key": p.key, "value": p.value} for p in c.parameters],
    }
    return docker, problems


def _constraint(c: list[str]) -> list[str]:
    # Chronos' EQUALS is Marathon's CLUSTER: every task on agents whose field has the value.
    if len(c) >= 2 and c[1].upper() == "EQUALS":
        return [c[0], Operator.CLUSTER.value, *c[2:]]
    return c


# --- field names: native locations to Chronos names

_FIELDS: dict[tuple[str | int, ...], str] = {
    ("timezone",): "scheduleTimeZone",
    ("soft_error",): "softError",
    ("task",): "command",
    ("task", "command"): "command",
    ("task", "shell"): "command",
    ("task", "cpus"): "cpus",
    ("task", "mem"): "mem",
    ("task", "disk"): "disk",
    ("task", "gpus"): "gpus",
    ("task", "env"): "environmentVariables",
    ("task", "docker"): "container",
    ("task", "docker", "user"): "runAsUser",
    ("task", "docker", "force_pull"): "container.forcePullImage",
}
_CAMEL = {
    "host_path": "hostPath",
    "container_path": "containerPath",
    "force_pull": "forcePullImage",
}


def chronos_field(loc: Loc) -> str:
    """The Chronos name of a native field: ``("task", "cpus")`` is ``cpus``,
    ``("task", "docker", "volumes", 0, "host_path")`` is ``container.volumes[0].hostPath``."""
    parts = tuple(loc)
    for n in range(len(parts), 0, -1):
        if parts[:n] in _FIELDS:
            return _dotted(parts[n:], _FIELDS[parts[:n]])
    return _dotted(parts)


def _dotted(loc: Loc, head: str = "") -> str:
    name = head
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            part = _CAMEL.get(part, part)
            name = f"{name}.{part}" if name else part
    return name


def _message(err: ErrorDetails) -> str:
    return err["msg"].removeprefix("Value error, ")


# --- JobView -> Chronos job


def _iso(value: datetime | None) -> str:
    """A time as Chronos writes it (``2014-03-08T16:57:17.507Z``), or "" for never."""
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _command(task: TaskTemplate) -> tuple[str, bool, list[str]]:
    """Chronos' command, shell and arguments of a task."""
    if task.command is not None:
        return task.command[0], False, task.command[1:]
    return task.shell or "", True, []


def chronos_job(view: JobView) -> dict[str, Any]:
    """A job as Chronos' ``GET /scheduler/jobs`` lists it."""
    spec, task = view.spec, view.spec.task
    command, shell, arguments = _command(task)
    out: dict[str, Any] = {
        "name": view.name,
        "command": command,
        "shell": shell,
        "arguments": arguments,
        "epsilon": "" if spec.epsilon is None else format_duration(spec.epsilon),
        "retries": spec.retries,
        "owner": spec.owner or view.owner,
        "ownerName": "",
        "description": spec.description,
        "disabled": spec.disabled,
        "concurrent": spec.concurrent,
        "softError": spec.soft_error,
        "async": False,
        "cpus": task.cpus,
        "mem": task.mem,
        "disk": task.disk,
        **({"gpus": task.gpus} if task.gpus else {}),  # only where asked: not Chronos' own
        "environmentVariables": [{"name": k, "value": v} for k, v in task.env.items()],
        "constraints": [
            _chronos_constraint(c.field, c.operator, c.value) for c in spec.constraints
        ],
        "uris": [],
        "fetch": [],
        "runAsUser": (task.docker.user or "") if task.docker else "",
        "successCount": view.success_count,
        "errorCount": view.error_count,
        "lastSuccess": _iso(view.last_success),
        "lastError": _iso(view.last_error),
        "executor": "",
        "executorFlags": "",
        "highPriority": False,
        "dataProcessingJobType": False,
    }
    # Chronos lists parents for a dependent job and a schedule otherwise, never both.
    if spec.parents:
        out["parents"] = list(spec.parents)
    else:
        out["schedule"] = _counted_down(spec.schedule or "", view.remaining)
        out["scheduleTimeZone"] = spec.timezone
    if task.docker is not None:
        d = task.docker
        out["container"] = {
            "type": "DOCKER",
            "image": d.image,
            "network": d.network,
            "volumes": [
                {"containerPath": v.container_path, "hostPath": v.host_path, "mode": v.mode}
                for v in d.volumes
            ],
            "forcePullImage": d.force_pull,
            "parameters": [{"key": p.key, "value": p.value} for p in d.parameters],
        }
    return out


def _counted_down(schedule: str, remaining: int | None) -> str:
    """``R<n>/...`` with the firings left, as Chronos writes it (a finished R1 job is R0)."""
    head, sep, rest = schedule.partition("/")
    if remaining is None or not sep or not head.startswith("R"):
        return schedule
    return f"R{remaining}/{rest}"


def _chronos_constraint(field: str, op: Operator, value: str | None) -> list[str]:
    name = "EQUALS" if op is Operator.CLUSTER else op.value
    return [field, name] if value is None else [field, name, value]
