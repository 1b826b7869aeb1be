"""How services, their tasks and deployments are shown: table columns and detail grids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from corral.cli.output import Cell, Column, duration, fields, state, when
from corral.cli.views import command_line, resources

if TYPE_CHECKING:  # named for the type checker only: declaring the commands loads no models
    from corral.spec.services import HealthCheckSpec, ServiceSpec
    from corral.spec.views import DeploymentView, FailureView, ServiceView, TaskView

SCALE_ACTION = "ScaleApplication"  # a deployment step that changes instances, restarting nothing
_DEPLOYMENT_STYLES = {"RUNNING": "blue", "SUCCEEDED": "green", "CANCELLED": "yellow"}


def _health_count(service: ServiceView, n: int, style: str) -> Cell:
    # Without health checks no task is ever healthy or unhealthy: say so, not "0".
    if not service.spec.health_checks:
        return Text("-", style="dim")
    return Text(str(n), style=style if n else "")


def failure_text(failure: FailureView | None) -> str:
    """``13:20:05 FAILED: exited with status 1 (web.4f…)``, or "" without one."""
    if failure is None:
        return ""
    reason = f": {failure.reason}" if failure.reason else ""
    return f"{when(failure.time)} {failure.state}{reason} ({failure.task_id})"


def waiting_text(service: ServiceView) -> str:
    """Why the service is short of tasks: its restart backoff and what keeps tasks unplaced."""
    parts = []
    if service.delay_until is not None:
        parts.append(f"backoff until {when(service.delay_until)}")
    if service.waiting:
        parts.append(service.waiting)
    return "; ".join(parts)


SERVICE_COLUMNS: list[Column[ServiceView]] = [
    Column("ID", lambda s: s.id),
    Column("WANT", lambda s: str(s.spec.instances), "right"),
    Column("RUNNING", lambda s: str(s.counts.running), "right"),
    Column("HEALTHY", lambda s: _health_count(s, s.counts.healthy, "green"), "right"),
    Column("UNHEALTHY", lambda s: _health_count(s, s.counts.unhealthy, "red"), "right"),
    Column("STAGED", lambda s: str(s.counts.staged), "right"),
    Column("DEPLOYING", lambda s: str(len(s.deployments)) if s.deployments else "", "right"),
    Column("WAITING", waiting_text, wrap=True),
    Column("LAST FAILURE", lambda s: failure_text(s.last_failure), wrap=True),
]


def health(task: TaskView, checked: bool) -> Text:
    """A task's health by its last check: healthy, unhealthy, unknown (none yet) or "-"."""
    if not checked:
        return Text("-", style="dim")
    if task.healthy is None:
        return Text("unknown", style="dim")
    return Text("healthy", style="green") if task.healthy else Text("unhealthy", style="red")


def ports(task: TaskView) -> str:
    """The task's host ports, PORT0 first."""
    return ",".join(str(p) for p in task.ports)


def service_task_columns(checked: bool) -> list[Column[TaskView]]:
    """Columns of a service's tasks; ``checked``: the service has health checks."""
    return [
        # Marathon-style ids are long (service path and a uuid): folded rather than letting
        # the host, ports and health fall off an 80-column terminal.
        Column("ID", lambda t: t.id, wrap=True),
        Column("STATE", lambda t: state(t.state)),
        Column("HEALTH", lambda t: health(t, checked)),
        Column("HOST", lambda t: t.hostname or ""),
        Column("PORTS", ports),
        Column("CONFIG", lambda t: str(t.run), "right"),
        Column("STARTED", lambda t: when(t.started_at)),
        Column("NOTE", lambda t: t.health or t.waiting or t.reason, wrap=True),
    ]


def deployment_state(value: str) -> Text:
    """A deployment's state in its colour."""
    return Text(value, style=_DEPLOYMENT_STYLES.get(value, ""))


def step_text(deployment: DeploymentView) -> str:
    """``2/3 RestartApplication /web``: the step being carried out (or the last one)."""
    if not deployment.steps:
        return ""
    index = max(deployment.current_step, 1) - 1
    actions = ", ".join(f"{a.action} {a.service}" for a in deployment.steps[index])
    return f"{deployment.current_step}/{len(deployment.steps)} {actions}"


DEPLOYMENT_COLUMNS: list[Column[DeploymentView]] = [
    Column("ID", lambda d: d.id),
    Column("STATE", lambda d: deployment_state(d.state)),
    Column("SERVICES", lambda d: ",".join(d.services), wrap=True),
    Column("STEP", step_text, wrap=True),
    Column("CREATED", lambda d: when(d.created_at)),
    Column("TOOK", lambda d: duration(d.created_at, d.finished_at)),
    Column("REASON", lambda d: d.reason, wrap=True),
]


def _check(check: HealthCheckSpec) -> str:
    if check.protocol == "COMMAND":
        target = check.command or ""
    elif check.port is not None:
        target = f"port {check.port}"
    else:
        target = f"PORT{check.port_index or 0}"
    path = f" {check.path}" if check.protocol in ("HTTP", "HTTPS") else ""
    return (
        f"{check.protocol} {target}{path} every {check.interval:g}s "
        f"(grace {check.grace_period:g}s, {check.max_consecutive_failures} failures kill)"
    )


def _ports(spec: ServiceSpec) -> str:
    names = spec.all_port_names()
    docker = spec.task.docker
    if docker is not None and docker.network == "BRIDGE":
        shown = [
            f"{m.container_port}->{m.host_port or 'any'}/{m.protocol}" for m in docker.port_mappings
        ]
    else:
        shown = [f"{p.port or 'any'}/{p.protocol}" for p in spec.ports]
    return ", ".join(
        f"PORT{i}={port}" + (f" ({name})" if name else "")
        for i, (port, name) in enumerate(zip(shown, names, strict=True))
    )


def _instances(service: ServiceView) -> str:
    c = service.counts
    out = f"{service.spec.instances} wanted: {c.running} running, {c.staged} staged"
    if service.spec.health_checks:
        out += f", {c.healthy} healthy, {c.unhealthy} unhealthy"
    return out


def service_fields(service: ServiceView) -> Table:
    """The service's identity, a summary of its spec, and how far reality is from it."""
    spec = service.spec
    t = spec.task
    up = spec.upgrade
    b = spec.backoff
    return fields(
        [
            ("id", service.id),
            ("owner", service.owner),
            ("description", spec.description),
            ("instances", _instances(service)),
            ("command", command_line(t.command, t.shell)),
            ("image", t.docker.image if t.docker else None),
            ("resources", resources(t)),
            ("ports", _ports(spec)),
            ("health checks", "; ".join(_check(c) for c in spec.health_checks)),
            (
                "constraints",
                ", ".join(
                    " ".join(filter(None, (c.field, c.operator.value, c.value)))
                    for c in spec.constraints
                ),
            ),
            (
                "upgrade",
                f"min healthy {up.minimum_health_capacity:g}, "
                f"max over capacity {up.maximum_over_capacity:g}",
            ),
            (
                "backoff",
                f"{b.seconds:g}s x{b.factor:g} up to {b.max_launch_delay:g}s",
            ),
            ("version", service.version),
            ("config", f"{service.config} (since {service.config_version})"),
            ("deployments", ", ".join(service.deployments)),
            ("waiting", waiting_text(service)),
            ("last failure", failure_text(service.last_failure)),
            ("created", when(service.created_at)),
            ("updated", when(service.updated_at)),
        ]
    )
