"""Service helpers for integration tests and benchmarks on a real cluster, over the Python
client (``corral.client.Client``), and the checks they wait on."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from corral.client import Client
from corral.spec.services import ServiceSpec
from corral.spec.views import DeploymentView, TaskView


def create(api: Client, doc: Mapping[str, Any]) -> DeploymentView:
    """Create a service from a plain document; answers the deployment that starts it."""
    return api.create_service(ServiceSpec.model_validate(doc))


def running(tasks: list[TaskView]) -> list[TaskView]:
    """The RUNNING ones."""
    return [t for t in tasks if t.state.value == "RUNNING"]


def settled(api: Client, service_id: str, instances: int) -> list[TaskView] | None:
    """The service's tasks once exactly ``instances`` live tasks all run and no deployment is
    under way; else None (a check to wait on)."""
    if api.deployments():
        return None
    tasks = api.service_tasks(service_id)
    if len(tasks) != instances or len(running(tasks)) != instances:
        return None
    return tasks


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: the signal said it exists
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
