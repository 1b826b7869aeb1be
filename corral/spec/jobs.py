"""The native job spec: what a user submits to run batch work."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from corral.scheduler.model import Operator, Strategy
from corral.spec import limits
from corral.spec.docker import DockerSpec, ShortText
from corral.spec.schedules import parse_schedule
from corral.spec.sweeps import array_bound, sweep_size

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TASKS_PER_RUN = 100_000
MAX_GANG_NODES = 10_000
MAX_TASKS_PER_NODE = 1024

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="Letters, digits, '_', '.', '-'; starts with a letter or digit; 100 at most.",
    ),
]


class ConstraintSpec(BaseModel):
    """A placement rule, as Marathon writes it: field, operator and (for most) a value."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=100)
    operator: Operator
    value: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        # Marathon writes constraints as ["field", "OPERATOR", "value"]; accept that form too.
        if isinstance(data, list | tuple) and 2 <= len(data) <= 3:
            return dict(zip(("field", "operator", "value"), data, strict=False))
        return data

    @model_validator(mode="after")
    def _value_fits_operator(self) -> ConstraintSpec:
        op = self.operator
        if op in (Operator.LIKE, Operator.UNLIKE):
            if self.value is None:
                raise ValueError(f"{op} needs a regular expression as value")
            try:
                re.compile(self.value)
            except re.error as e:
                raise ValueError(f"value is not a valid regular expression: {e}") from None
        elif op == Operator.MAX_PER:
            if self.value is None or not self.value.isdigit() or int(self.value) < 1:
                raise ValueError("MAX_PER needs a whole number >= 1 as value")
        elif op == Operator.GROUP_BY:
            if self.value is not None and (not self.value.isdigit() or int(self.value) < 1):
                raise ValueError("GROUP_BY takes an optional whole number >= 1 as value")
        elif op == Operator.UNIQUE and self.value is not None:
            raise ValueError("UNIQUE takes no value")
        return self


class TaskTemplate(BaseModel):
    """What each task of a job runs, and with what resources."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] | None = Field(
        None, description="argv: the program and its arguments, run without a shell."
    )
    shell: str | None = Field(None, description="A command line run with /bin/sh -c.")
    env: dict[str, str] = Field(default_factory=dict)
    cpus: float = Field(1.0, gt=0, le=4096)
    mem: int = Field(128, ge=1, le=64 * 1024 * 1024, description="MiB")
    disk: int = Field(0, ge=0, le=1024 * 1024 * 1024, description="MiB")
    gpus: int = Field(0, ge=0, le=64)
    workdir: ShortText | None = Field(
        None, description="Working directory; relative paths are inside the task's sandbox."
    )
    max_runtime: float | None = Field(
        None, gt=0, description="Seconds; a task still running then is killed and FAILED."
    )
    kill_grace: float = Field(
        10.0, ge=0, le=3600, description="Seconds between SIGTERM and SIGKILL."
    )
    driver: Literal["process", "docker"] = Field(
        "process", description="'docker' when a container is given."
    )
    docker: DockerSpec | None = Field(None, description="Run in this container (driver docker).")

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or not v[0]):
            raise ValueError("command must name a program")
        if v is not None:
            limits.argv(v)
        return v

    @field_validator("shell")
    @classmethod
    def _shell_not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("shell must not be blank")
        return v if v is None else limits.command_line(v)

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        limits.environment(v)
        for key in v:
            if not ENV_NAME.fullmatch(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return v

    @model_validator(mode="before")
    @classmethod
    def _container_means_docker(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("docker") is not None and "driver" not in data:
            return {**data, "driver": "docker"}
        return data

    @model_validator(mode="after")
    def _one_way_to_run(self) -> TaskTemplate:
        if self.command is not None and self.shell is not None:
            raise ValueError("give either 'command' (argv) or 'shell' (a command line), not both")
        if self.driver == "docker":
            if self.docker is None:
                raise ValueError("driver 'docker' needs 'docker' with at least an image")
        elif self.docker is not None:
            raise ValueError(f"'docker' settings need driver 'docker', not {self.driver!r}")
        elif self.command is None and self.shell is None:
            raise ValueError("give exactly one of 'command' (argv) or 'shell' (a command line)")
        return self


def unencodable_path(value: Any, path: str) -> str | None:
    """The path of the first string that is not valid Unicode (a lone surrogate), if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "(value)"
    elif isinstance(value, dict):
        for k, v in value.items():
            inner = f"{path}.{k}" if path else str(k)
            found = unencodable_path(k, path) or unencodable_path(v, inner)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = unencodable_path(v, f"{path}[{i}]")
            if found:
                return found
    return None


def require_valid_unicode(data: Any) -> Any:
    """``data`` as it is; ValueError naming the first string in it that is not valid Unicode.

    JSON may carry lone surrogates ("\ud800"); stored, they could never be sent on.
    """
    where = unencodable_path(data, "")
    if where is not None:
        raise ValueError(f"{where}: text is not valid Unicode (a lone surrogate)")
    return data


class JobSpec(BaseModel):
    """A batch workload: one task, or an array / parameter sweep of tasks, with retries."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        return require_valid_unicode(data)

    kind: Literal["job"] = "job"
    name: Name
    owner: str | None = Field(None, max_length=100, description="Defaults to the caller.")
    description: str = Field("", max_length=10_000)
    task: TaskTemplate
    array: str | None = Field(
        None, description="Array indices: '0-95', '1,3,5-7' or '0-99:2' (every second)."
    )
    params: dict[str, list[ShortText]] = Field(
        default_factory=dict,
        description="Parameter sweep: one task per combination; '{NAME}' is replaced.",
    )
    retries: int = Field(0, ge=0, le=100, description="Extra attempts for a failed task.")
    retry_backoff: float = Field(
        1.0, ge=0, le=3600, description="Seconds before the first retry; doubles each time."
    )
    max_retry_delay: float = Field(300.0, ge=0, le=86400)
    priority: int = Field(0, ge=-1000, le=1000)
    placement: Strategy = Strategy.BINPACK
    constraints: list[ConstraintSpec] = Field(default_factory=list)
    schedule: str | None = Field(
        None,
        description="When to run: an ISO 8601 repeating interval 'R[n]/[start]/period' "
        "(R alone repeats forever, an empty start means now) or a 5-field cron expression. "
        "Without a schedule or parents, a job runs once when submitted.",
    )
    timezone: str = Field("UTC", description="IANA time zone of the schedule.")
    epsilon: float | None = Field(
        None, ge=0, description="Seconds a firing may be late; a later one is skipped."
    )
    missed: Literal["run-once", "skip"] = Field(
        "run-once",
        description="Firings missed while the master was down: run once, or skip them.",
    )
    parents: list[Name] = Field(
        default_factory=list,
        description="Run after every parent has succeeded since this job's last run.",
    )
    disabled: bool = Field(False, description="Neither the schedule nor parents start runs.")
    concurrent: bool = Field(False, description="May a new run start while one is still running.")
    soft_error: bool = Field(
        False, description="A failed run does not count against the job (Chronos' softError)."
    )
    nodes: int | None = Field(
        None,
        ge=1,
        le=MAX_GANG_NODES,
        description="Run as a gang (an MPI job) on this many distinct agents: every rank is "
        "placed and started together, or none is; one rank failing stops and retries them all.",
    )
    tasks_per_node: int | None = Field(
        None, ge=1, le=MAX_TASKS_PER_NODE, description="Ranks of a gang on each node (default 1)."
    )
    every_rank: bool = Field(
        False,
        description="A gang runs the command on every rank (as srun does); by default rank 0 "
        "runs it (mpirun) and the other ranks wait for mpirun to start its daemons in them.",
    )

    @field_validator("array")
    @classmethod
    def _array_parses(cls, v: str | None) -> str | None:
        if v is not None:
            array_bound(v)  # parses without enumerating; raises ValueError with the reason
        return v

    @field_validator("params")
    @classmethod
    def _params_valid(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, values in v.items():
            if not ENV_NAME.fullmatch(key):
                raise ValueError(f"parameter name {key!r} must be letters, digits and '_'")
            if key == "index":
                raise ValueError("'index' is reserved for the array index")
            if not values:
                raise ValueError(f"parameter {key!r} needs at least one value")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("parents")
    @classmethod
    def _distinct_parents(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a parent is named twice")
        return v

    @classmethod
    def stored(cls, doc: Any) -> JobSpec:
        """A spec read back from the store: admitted when written, so rules added since (sizes,
        NUL bytes, the shortest period) do not make it unreadable."""
        with limits.reading_stored():
            return cls.model_validate(doc)

    @model_validator(mode="after")
    def _schedule_valid(self) -> JobSpec:
        if self.schedule is not None:
            if self.parents:
                raise ValueError("a job runs on a schedule or after its parents, not both")
            try:
                if limits.admitting():  # a stored schedule is parked by the loop if bad now
                    parse_schedule(self.schedule, self.timezone)
            except ValueError as e:
                raise ValueError(f"schedule: {e}") from None
        if self.name in self.parents:
            raise ValueError("a job cannot be its own parent")
        return self

    @property
    def gang_size(self) -> int | None:
        """Ranks of a gang job (nodes × tasks per node); None for other jobs."""
        return None if self.nodes is None else self.nodes * (self.tasks_per_node or 1)

    @model_validator(mode="after")
    def _gang_valid(self) -> JobSpec:
        if self.nodes is None:
            if self.tasks_per_node is not None:
                raise ValueError("tasks_per_node: needs 'nodes' (a gang job)")
            if self.every_rank:
                raise ValueError("every_rank: needs 'nodes' (a gang job)")
        elif self.array is not None or self.params:
            field = "array" if self.array is not None else "params"
            raise ValueError(f"{field}: a gang job (nodes) runs one gang per run, not an array")
        return self

    @model_validator(mode="after")
    def _size_bounded(self) -> JobSpec:
        n = self.gang_size or sweep_size(self.array, self.params)
        if n > MAX_TASKS_PER_RUN:
            raise ValueError(f"{n} tasks per run is over the limit of {MAX_TASKS_PER_RUN}")
        if limits.admitting():
            limits.copies_fit(len(self.task.model_dump_json()), n, "tasks per run")
        return self
