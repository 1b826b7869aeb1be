"""Turning a service spec into task rows, and the records the master keeps of services and
deployments."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from corral.master.work import rules_of
from corral.spec.protocol import HostPort, TaskLaunch
from corral.spec.services import ServiceSpec
from corral.store.rows import PackedLaunch, TaskRow

# Marathon's names for what a deployment does to an app.
START = "StartApplication"
SCALE = "ScaleApplication"
RESTART = "RestartApplication"
STOP = "StopApplication"
MAX_LABEL_ENV = 512  # Marathon's limit on a label's key and value in the environment


def version_of(time: float) -> str:
    """Marathon's version strings: ISO 8601 in UTC with milliseconds."""
    return datetime.fromtimestamp(time, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def service_task_id(service_id: str) -> str:
    """Marathon's form, ``lab_portal.<uuid>``: unique even when a service is re-created."""
    return f"{service_id.strip('/').replace('/', '_')}.{uuid.uuid4()}"


def _env(spec: ServiceSpec, tid: str, config_version: str) -> dict[str, str]:
    env = dict(spec.task.env)
    env.update(
        CORRAL_TASK_ID=tid,
        CORRAL_SERVICE=spec.id,
        # The names images written for Marathon and Mesos read.
        MESOS_TASK_ID=tid,
        MARATHON_APP_ID=spec.id,
        MARATHON_APP_VERSION=config_version,
        MARATHON_APP_RESOURCE_CPUS=f"{spec.task.cpus:g}",
        MARATHON_APP_RESOURCE_MEM=f"{spec.task.mem:g}",
        MARATHON_APP_RESOURCE_DISK=f"{spec.task.disk:g}",
        MARATHON_APP_RESOURCE_GPUS=str(spec.task.gpus),
    )
    if spec.task.docker is not None:
        env["MARATHON_APP_DOCKER_IMAGE"] = spec.task.docker.image
    env.update(label_env(spec.labels))
    return env


def label_env(labels: Mapping[str, str]) -> dict[str, str]:
    """Marathon's variables of an app's labels: ``MARATHON_APP_LABELS`` names them (upper-case,
    runs of other characters than letters, digits and ``_`` as one ``_``), and
    ``MARATHON_APP_LABEL_<NAME>`` holds each value. Labels of 512 characters or more are left
    out, as Marathon leaves them."""
    kept = {
        re.sub(r"[^a-zA-Z0-9_]+", "_", key).upper(): value
        for key, value in labels.items()
        if len(key) < MAX_LABEL_ENV and len(value) < MAX_LABEL_ENV
    }
    env = {"MARATHON_APP_LABELS": " ".join(kept)}
    env.update({f"MARATHON_APP_LABEL_{name}": value for name, value in kept.items()})
    return env


def launch_of(spec: ServiceSpec, tid: str, config_version: str) -> TaskLaunch:
    """The launch message of one task of the service."""
    t = spec.task
    docker = t.docker
    bridge = docker is not None and docker.network == "BRIDGE"
    ports = [
        HostPort(port=p.port if spec.require_ports else 0, name=p.name, protocol=p.protocol)
        for p in ([] if bridge else spec.ports)
    ]
    return TaskLaunch(
        task_id=tid,
        job=spec.id,
        command=t.command,
        shell=t.shell,
        env=_env(spec, tid, config_version),
        cpus=t.cpus,
        mem=t.mem,
        disk=t.disk,
        gpus=t.gpus,
        workdir=t.workdir,
        kill_grace=t.kill_grace,
        driver=t.driver,
        docker=docker,
        ports=ports,
        health_checks=spec.health_checks,
    )


def task_rows(
    service: ServiceRecord, count: int, now: float, not_before: float | None
) -> list[TaskRow]:
    """``count`` new PENDING tasks of the service's current configuration."""
    spec = service.spec
    rules = rules_of(spec.constraints)
    rows = []
    for slot in range(service.next_slot, service.next_slot + count):
        tid = service_task_id(spec.id)
        rows.append(
            TaskRow(
                id=tid,
                job=spec.id,
                run=service.config,
                slot=slot,
                idx=slot,
                attempt=0,
                owner=service.owner,
                priority=spec.priority,
                launch=PackedLaunch.of(launch_of(spec, tid, service.config_version)),
                strategy=spec.placement.value,
                rules=rules,
                created_at=now,
                not_before=not_before,
            )
        )
    return rows


@dataclass(slots=True)
class ServiceRecord:
    """A service as the master tracks it (the ``services`` row, in memory)."""

    id: str
    owner: str
    spec: ServiceSpec
    version: str
    config: int
    config_version: str
    created_at: float
    next_slot: int = 0
    failures: int = 0
    delay_until: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ServiceRecord:
        """Build from a ``services`` row."""
        return cls(
            id=row["id"],
            owner=row["owner"],
            spec=ServiceSpec.stored(row["spec"]),
            version=row["version"],
            config=row["config"],
            config_version=row["config_version"],
            created_at=row["created_at"],
            next_slot=row["next_slot"],
            failures=row["failures"],
            delay_until=row["delay_until"],
        )


@dataclass(slots=True)
class DeploymentRecord:
    """A deployment that is still running."""

    id: str
    version: str
    steps: list[list[dict[str, str]]]
    current_step: int
    previous: dict[str, str | None]
    created_at: float
    affected: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.affected = {a["app"] for step in self.steps for a in step}

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> DeploymentRecord:
        """Build from a ``deployments`` row."""
        return cls(
            id=row["id"],
            version=row["version"],
            steps=[list(step) for step in row["steps"]],
            current_step=row["current_step"],
            previous=dict(row["previous"]),
            created_at=row["created_at"],
        )

    @property
    def job(self) -> str | None:
        """The service its events are filed under: the one it changes, if it changes one."""
        return next(iter(self.affected)) if len(self.affected) == 1 else None

    def action_of(self, service_id: str) -> tuple[int, str] | None:
        """The step index and action this deployment has for a service, if any."""
        for i, step in enumerate(self.steps):
            for a in step:
                if a["app"] == service_id:
                    return i, a["action"]
        return None
