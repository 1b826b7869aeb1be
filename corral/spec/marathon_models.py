"""Marathon app and group JSON as its clients send it, read with Marathon's names and types.

These models only read: every field has Marathon's JSON name (camelCase) and type, so a wrong
type is reported at the field's Marathon path (``/healthChecks(0)/portIndex``). A null is the
same as an absent field, as Marathon reads it. Unknown fields are refused, so that nothing a
client asks for is silently dropped; fields Marathon answers on GET and clients post back
(``version``, ``tasksRunning``...) are declared and ignored. Whether a value is *supported* is
decided later, in ``marathon_apps``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel


def _whole(v: Any) -> Any:
    # JSON writers that know only doubles send 3 as 3.0: read it as the whole number it is.
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


Int = Annotated[int, BeforeValidator(_whole)]
Health = Literal["HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"]


class MarathonModel(BaseModel):
    """Strict JSON types, Marathon's camelCase names, null read as absent, unknown refused."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        alias_generator=to_camel,
        populate_by_name=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class HealthCheck(MarathonModel):
    """One of ``healthChecks``."""

    protocol: Health = "HTTP"
    path: str | None = None
    port_index: Int | None = None
    port: Int | None = None
    command: str | None = None
    grace_period_seconds: float = 300.0
    interval_seconds: float = 60.0
    timeout_seconds: float = 20.0
    max_consecutive_failures: Int = 3
    ignore_http1xx: bool = Field(False, alias="ignoreHttp1xx")
    delay_seconds: float = 15.0
    ip_protocol: Literal["IPv4", "IPv6"] = "IPv4"

    @field_validator("command", mode="before")
    @classmethod
    def _command_value(cls, v: Any) -> Any:
        # Marathon writes {"value": "..."}; old clients (and marathon-python's docs) a string.
        if isinstance(v, dict):
            if set(v) != {"value"}:
                raise ValueError('must be {"value": "a shell command"}')
            return v["value"]
        return v


class PortDefinition(MarathonModel):
    """One of ``portDefinitions``."""

    port: Int = 0
    name: str | None = None
    protocol: str = "tcp"
    labels: dict[str, str] = Field(default_factory=dict)


class PortMapping(MarathonModel):
    """One of ``container.portMappings`` (or the older ``container.docker.portMappings``)."""

    container_port: Int = 0
    host_port: Int = 0
    service_port: Int = 0
    protocol: str = "tcp"
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    network_names: list[str] = Field(default_factory=list)


class Volume(MarathonModel):
    """One of ``container.volumes``."""

    container_path: str
    host_path: str | None = None
    mode: Literal["RO", "RW"] = "RW"
    persistent: Any = None
    external: Any = None
    secret: Any = None


class Parameter(MarathonModel):
    """One of ``container.docker.parameters``: a ``docker run`` option."""

    key: str
    value: str = ""


class Docker(MarathonModel):
    """``container.docker``."""

    image: str = ""
    network: Literal["BRIDGE", "HOST", "USER", "NONE"] | None = None
    port_mappings: list[PortMapping] = Field(default_factory=list)
    privileged: bool = False
    parameters: list[Parameter] = Field(default_factory=list)
    force_pull_image: bool = False
    credential: Any = None
    pull_config: Any = None


class Container(MarathonModel):
    """``container``: DOCKER, or MESOS (UCR) with a Docker image."""

    type: Literal["DOCKER", "MESOS"] = "DOCKER"
    docker: Docker | None = None
    port_mappings: list[PortMapping] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)


class Network(MarathonModel):
    """One of ``networks`` (Marathon 1.5+)."""

    mode: Literal["host", "container/bridge", "container"] = "container"
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class UpgradeStrategy(MarathonModel):
    """``upgradeStrategy``."""

    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0


class UnreachableStrategy(MarathonModel):
    """``unreachableStrategy`` in its object form (it may also be the string "disabled")."""

    inactive_after_seconds: Int = Field(0, ge=0)
    expunge_after_seconds: Int = Field(0, ge=0)


class App(MarathonModel):
    """An app definition as ``POST /v2/apps`` takes it (and ``GET`` answers it)."""

    id: str | None = None
    cmd: str | None = None
    args: list[str] | None = None
    user: str | None = None
    env: dict[str, Any] = Field(default_factory=dict)
    instances: Int = 1
    cpus: float = 1.0
    mem: float = 128.0
    disk: float = 0.0
    gpus: Int = 0
    constraints: list[list[Any]] = Field(default_factory=list)
    container: Container | None = None
    networks: list[Network] = Field(default_factory=list)
    health_checks: list[HealthCheck] = Field(default_factory=list)
    upgrade_strategy: UpgradeStrategy = Field(default_factory=UpgradeStrategy)
    backoff_seconds: float = 1.0
    backoff_factor: float = 1.15
    max_launch_delay_seconds: float = 300.0
    ports: list[Int] | None = None
    port_definitions: list[PortDefinition] | None = None
    require_ports: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    dependencies: list[str] = Field(default_factory=list)
    task_kill_grace_period_seconds: float | None = None
    # Accepted when empty or Marathon's default; anything else is refused in marathon_apps.
    executor: str = ""
    fetch: list[Any] = Field(default_factory=list)
    uris: list[Any] = Field(default_factory=list)
    store_urls: list[Any] = Field(default_factory=list)
    kill_selection: Literal["YOUNGEST_FIRST", "OLDEST_FIRST"] = "YOUNGEST_FIRST"
    unreachable_strategy: Any = None
    residency: Any = None
    secrets: dict[str, Any] = Field(default_factory=dict)
    readiness_checks: list[Any] = Field(default_factory=list)
    accepted_resource_roles: list[str] | None = None
    role: str | None = None
    ip_address: Any = None
    check: Any = None
    resource_limits: Any = None
    # Answered by GET and posted back by clients that PUT what they read: ignored.
    version: Any = None
    version_info: Any = None
    tasks_running: Any = None
    tasks_staged: Any = None
    tasks_healthy: Any = None
    tasks_unhealthy: Any = None
    deployments: Any = None
    tasks: Any = None
    last_task_failure: Any = None
    task_stats: Any = None
    readiness_check_results: Any = None
    task_rate_limit: Any = None  # removed in Marathon 0.7, which ignores it too
    description: Any = None  # not Marathon's; some tools write it


class Group(MarathonModel):
    """A group as ``POST /v2/groups`` takes it; apps and subgroups are read one by one."""

    id: str | None = None
    apps: list[dict[str, Any]] = Field(default_factory=list)
    groups: list[dict[str, Any]] = Field(default_factory=list)
    dependencies: list[str] | None = None  # None: left out (a change keeps the group's)
    pods: list[Any] = Field(default_factory=list)
    scale_by: float | None = Field(None, gt=0)  # a PUT of only this scales every app
    enforce_role: bool | None = None
    version: Any = None
