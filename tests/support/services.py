"""The native service API (``/api/v1/services``, ``/api/v1/deployments``) of a real cluster,
typed, for integration tests and benchmarks; and the checks they wait on.

A thin layer over httpx that answers the API's own views: errors raise the client's
``ApiError`` (a ``ClientError``), which ``Cluster.wait_until`` treats as "not yet".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from pydantic import TypeAdapter

from corral.client.errors import error_from_response
from corral.spec.services import normalize_service_id
from corral.spec.views import DeploymentView, ServiceView, TaskView

_TASKS = TypeAdapter(list[TaskView])
_DEPLOYMENTS = TypeAdapter(list[DeploymentView])


class ServiceApi:
    """Calls of the native service API; close it, or use it with ``with``."""

    def __init__(self, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=30)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceApi:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        response = self._http.request(method, f"/api/v1{path}", json=body)
        if response.is_error:
            raise error_from_response(response)
        return response

    @staticmethod
    def _path(service_id: str) -> str:
        return f"/services{normalize_service_id(service_id)}"

    def create(self, doc: Mapping[str, Any]) -> DeploymentView:
        """``POST /services``: the deployment that starts the service."""
        return DeploymentView.model_validate_json(self._call("POST", "/services", doc).content)

    def get(self, service_id: str) -> ServiceView:
        """``GET /services/{id}``."""
        return ServiceView.model_validate_json(self._call("GET", self._path(service_id)).content)

    def scale(self, service_id: str, instances: int) -> DeploymentView:
        """``POST /services/{id}/scale``."""
        body = {"instances": instances}
        r = self._call("POST", f"{self._path(service_id)}/scale", body)
        return DeploymentView.model_validate_json(r.content)

    def restart(self, service_id: str) -> DeploymentView:
        """``POST /services/{id}/restart``: a rolling replacement of every task."""
        r = self._call("POST", f"{self._path(service_id)}/restart")
        return DeploymentView.model_validate_json(r.content)

    def delete(self, service_id: str) -> DeploymentView:
        """``DELETE /services/{id}``: the deployment that stops its tasks."""
        r = self._call("DELETE", self._path(service_id))
        return DeploymentView.model_validate_json(r.content)

    def tasks(self, service_id: str) -> list[TaskView]:
        """``GET /services/{id}/tasks``: the live tasks (those being killed included)."""
        return _TASKS.validate_json(self._call("GET", f"{self._path(service_id)}/tasks").content)

    def deployment(self, deployment_id: str) -> DeploymentView:
        """``GET /deployments/{id}``."""
        r = self._call("GET", f"/deployments/{deployment_id}")
        return DeploymentView.model_validate_json(r.content)

    def deployments(self) -> list[DeploymentView]:
        """``GET /deployments``: the running ones."""
        return _DEPLOYMENTS.validate_json(self._call("GET", "/deployments").content)


def running(tasks: list[TaskView]) -> list[TaskView]:
    """The RUNNING ones."""
    return [t for t in tasks if t.state.value == "RUNNING"]


def settled(api: ServiceApi, service_id: str, instances: int) -> list[TaskView] | None:
    """The service's tasks once exactly ``instances`` live tasks all run and no deployment is
    under way; else None (a check to wait on)."""
    if api.deployments():
        return None
    tasks = api.tasks(service_id)
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
