"""The API's calls, described once for both clients: how to ask, and how to read the answer.

``Client`` and ``AsyncClient`` only differ in how they send a ``Call``; everything about paths,
query parameters, bodies, status codes and models lives here (a "sans-I/O" layer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter, ValidationError

from corral.client._api import API
from corral.client.errors import Answer, ClientError, error_from_response
from corral.spec.jobs import JobSpec
from corral.spec.services import ServiceSpec, normalize_service_id
from corral.spec.states import TaskState
from corral.spec.views import (
    AgentView,
    ClusterInfo,
    DeploymentView,
    JobView,
    LogChunk,
    RunView,
    ServiceVersionView,
    ServiceView,
    TaskView,
    UsageView,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

LogFile = Literal["stdout", "stderr"]
Params = dict[str, str | int | list[str]]

EVENTS_PATH = f"{API}/events"
NEXT_HEADER = "x-corral-next"  # where a page of a long list names the next one

_JOBS = TypeAdapter(list[JobView])
_RUNS = TypeAdapter(list[RunView])
_TASKS = TypeAdapter(list[TaskView])
_AGENTS = TypeAdapter(list[AgentView])
_SERVICES = TypeAdapter(list[ServiceView])
_VERSIONS = TypeAdapter(list[ServiceVersionView])
_DEPLOYMENTS = TypeAdapter(list[DeploymentView])


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the function that reads its successful answer."""

    method: str
    path: str
    parse: Callable[[Answer], T]
    params: Params = field(default_factory=dict)
    body: Any = None

    def finish(self, response: Answer) -> T:
        """Raise ``ApiError`` for an error status, else parse the answer into its model."""
        if response.is_error:
            raise error_from_response(response)
        try:
            return self.parse(response)
        except ValidationError as e:
            # A master of another version, or a bug: say which call, not just pydantic's text.
            raise ClientError(
                f"unexpected answer from the master to {self.method} {self.path}: {e}"
            ) from None


def _q(segment: str) -> str:
    # Names and ids never contain '/', but user input might: keep it inside one path segment.
    return quote(segment, safe="")


def _one(model: type[M]) -> Callable[[Answer], M]:
    return lambda r: model.model_validate_json(r.content)


def _many(adapter: TypeAdapter[list[M]]) -> Callable[[Answer], list[M]]:
    return lambda r: adapter.validate_json(r.content)


class Page(list[T]):
    """A page of a long list: its items, and ``next``, the cursor of the page after it
    (``after=page.next``; None: this page ends the list)."""

    next: str | None = None


def _page(adapter: TypeAdapter[list[M]]) -> Callable[[Answer], Page[M]]:
    def parse(r: Answer) -> Page[M]:
        page = Page(adapter.validate_json(r.content))
        page.next = r.headers.get(NEXT_HEADER)
        return page

    return parse


def _nothing(_: Answer) -> None:
    return None


def _job_and_created(r: Answer) -> tuple[JobView, bool]:
    return JobView.model_validate_json(r.content), r.status_code == 201


def _deployment_and_created(r: Answer) -> tuple[DeploymentView, bool]:
    return DeploymentView.model_validate_json(r.content), r.status_code == 201


def _rolled_back(r: Answer) -> DeploymentView | None:
    # 202 without a body: a forced cancel stops where it stands, nothing rolls back.
    return None if r.status_code == 202 else DeploymentView.model_validate_json(r.content)


def _spec_body(spec: JobSpec | ServiceSpec) -> Any:
    # Unset optionals are left out so the master applies its own defaults (e.g. owner).
    return spec.model_dump(mode="json", exclude_none=True)


def _params(**values: str | int | None) -> Params:
    return {k: v for k, v in values.items() if v is not None}


def _flags(**values: bool) -> Params:
    # Only the flags that are set: the API's defaults are all false.
    return {k: "true" for k, v in values.items() if v}


def service_path(service_id: str) -> str:
    """``/api/v1/services/lab/db`` for ``/lab/db`` (or ``lab/db``): the id's segments stay
    segments, checked first, so that no ``..`` can walk the path out of ``/services``.

    Raises ``ClientError`` for an id no service can have.
    """
    try:
        ident = normalize_service_id(service_id)
    except ValueError as e:
        raise ClientError(f"invalid service id {service_id!r}: {e}") from None
    return f"{API}/services{ident}"


def info() -> Call[ClusterInfo]:
    """``GET /api/v1/info``."""
    return Call("GET", f"{API}/info", _one(ClusterInfo))


def create_job(spec: JobSpec) -> Call[JobView]:
    """``POST /api/v1/jobs``: 409 if the name is taken."""
    return Call("POST", f"{API}/jobs", _one(JobView), body=_spec_body(spec))


def apply_job(spec: JobSpec) -> Call[tuple[JobView, bool]]:
    """``PUT /api/v1/jobs/{name}``: the view, and True when the job was created."""
    return Call("PUT", f"{API}/jobs/{_q(spec.name)}", _job_and_created, body=_spec_body(spec))


def jobs(owner: str | None, q: str | None) -> Call[list[JobView]]:
    """``GET /api/v1/jobs``, newest first."""
    return Call("GET", f"{API}/jobs", _many(_JOBS), params=_params(owner=owner, q=q))


def job(name: str) -> Call[JobView]:
    """``GET /api/v1/jobs/{name}``."""
    return Call("GET", f"{API}/jobs/{_q(name)}", _one(JobView))


def delete_job(name: str) -> Call[None]:
    """``DELETE /api/v1/jobs/{name}``: 409 while it has unfinished tasks."""
    return Call("DELETE", f"{API}/jobs/{_q(name)}", _nothing)


def kill_job(name: str) -> Call[JobView]:
    """``POST /api/v1/jobs/{name}/kill``."""
    return Call("POST", f"{API}/jobs/{_q(name)}/kill", _one(JobView))


def start_run(name: str, arguments: Sequence[str] = ()) -> Call[RunView]:
    """``POST /api/v1/jobs/{name}/runs``, ``arguments`` appended to the command."""
    params: Params = {"arguments": list(arguments)} if arguments else {}
    return Call("POST", f"{API}/jobs/{_q(name)}/runs", _one(RunView), params=params)


def runs(name: str) -> Call[list[RunView]]:
    """``GET /api/v1/jobs/{name}/runs``, newest first."""
    return Call("GET", f"{API}/jobs/{_q(name)}/runs", _many(_RUNS))


def run(name: str, number: int) -> Call[RunView]:
    """``GET /api/v1/jobs/{name}/runs/{n}``."""
    return Call("GET", f"{API}/jobs/{_q(name)}/runs/{number}", _one(RunView))


def kill_run(name: str, number: int) -> Call[RunView]:
    """``POST /api/v1/jobs/{name}/runs/{n}/kill``."""
    return Call("POST", f"{API}/jobs/{_q(name)}/runs/{number}/kill", _one(RunView))


def tasks(
    state: TaskState | str | None,
    job: str | None,
    run: int | None,
    agent: str | None,
    limit: int | None,
    after: str | None = None,
) -> Call[Page[TaskView]]:
    """``GET /api/v1/tasks`` with optional filters: at most ``limit``, from the cursor
    ``after`` (a page's ``next``)."""
    params = _params(
        state=None if state is None else str(state),
        job=job,
        run=run,
        agent=agent,
        limit=limit,
        after=after,
    )
    return Call("GET", f"{API}/tasks", _page(_TASKS), params=params)


def task(task_id: str) -> Call[TaskView]:
    """``GET /api/v1/tasks/{id}``, with its state history."""
    return Call("GET", f"{API}/tasks/{_q(task_id)}", _one(TaskView))


def kill_task(task_id: str) -> Call[TaskView]:
    """``POST /api/v1/tasks/{id}/kill``."""
    return Call("POST", f"{API}/tasks/{_q(task_id)}/kill", _one(TaskView))


def logs(task_id: str, file: LogFile, offset: int, length: int) -> Call[LogChunk]:
    """``GET /api/v1/tasks/{id}/logs/{file}``: 503 if the task's agent is not connected."""
    path = f"{API}/tasks/{_q(task_id)}/logs/{_q(file)}"
    return Call("GET", path, _one(LogChunk), params={"offset": offset, "length": length})


def agents() -> Call[list[AgentView]]:
    """``GET /api/v1/agents``."""
    return Call("GET", f"{API}/agents", _many(_AGENTS))


def usage(
    since: datetime | None, until: datetime | None, by: Literal["user", "group"]
) -> Call[UsageView]:
    """``GET /api/v1/usage``: accounting over ``[since, until)`` (a naive time is UTC)."""
    params = _params(since=_instant(since), until=_instant(until), by=by)
    return Call("GET", f"{API}/usage", _one(UsageView), params=params)


def _instant(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def drain_agent(agent_id: str, draining: bool) -> Call[AgentView]:
    """``POST /api/v1/agents/{id}/drain`` (or ``/undrain``)."""
    verb = "drain" if draining else "undrain"
    return Call("POST", f"{API}/agents/{_q(agent_id)}/{verb}", _one(AgentView))


def services() -> Call[list[ServiceView]]:
    """``GET /api/v1/services``, by id."""
    return Call("GET", f"{API}/services", _many(_SERVICES))


def service(service_id: str) -> Call[ServiceView]:
    """``GET /api/v1/services/{id}``."""
    return Call("GET", service_path(service_id), _one(ServiceView))


def create_service(spec: ServiceSpec, force: bool) -> Call[DeploymentView]:
    """``POST /api/v1/services``: 201 with the deployment that starts it; 409 if it exists."""
    return Call(
        "POST",
        f"{API}/services",
        _one(DeploymentView),
        params=_flags(force=force),
        body=_spec_body(spec),
    )


def apply_service(spec: ServiceSpec, force: bool) -> Call[tuple[DeploymentView, bool]]:
    """``PUT /api/v1/services/{id}``: the deployment, and True when the service was created."""
    return Call(
        "PUT",
        service_path(spec.id),
        _deployment_and_created,
        params=_flags(force=force),
        body=_spec_body(spec),
    )


def scale_service(service_id: str, instances: int, force: bool) -> Call[DeploymentView]:
    """``POST /api/v1/services/{id}/scale`` with ``{"instances": n}``."""
    return Call(
        "POST",
        f"{service_path(service_id)}/scale",
        _one(DeploymentView),
        params=_flags(force=force),
        body={"instances": instances},
    )


def restart_service(service_id: str, force: bool) -> Call[DeploymentView]:
    """``POST /api/v1/services/{id}/restart``: a rolling replacement of every task."""
    path = f"{service_path(service_id)}/restart"
    return Call("POST", path, _one(DeploymentView), params=_flags(force=force))


def delete_service(service_id: str, force: bool) -> Call[DeploymentView]:
    """``DELETE /api/v1/services/{id}``: the deployment that stops its tasks."""
    path = service_path(service_id)
    return Call("DELETE", path, _one(DeploymentView), params=_flags(force=force))


def service_tasks(service_id: str) -> Call[list[TaskView]]:
    """``GET /api/v1/services/{id}/tasks``: its live tasks."""
    return Call("GET", f"{service_path(service_id)}/tasks", _many(_TASKS))


def kill_service_task(service_id: str, task_id: str, scale: bool, force: bool) -> Call[TaskView]:
    """``DELETE /api/v1/services/{id}/tasks/{task}``: replaced, or with ``scale`` not."""
    path = f"{service_path(service_id)}/tasks/{_q(task_id)}"
    return Call("DELETE", path, _one(TaskView), params=_flags(scale=scale, force=force))


def service_versions(service_id: str) -> Call[list[ServiceVersionView]]:
    """``GET /api/v1/services/{id}/versions``, newest first."""
    return Call("GET", f"{service_path(service_id)}/versions", _many(_VERSIONS))


def service_version(service_id: str, version: str) -> Call[ServiceVersionView]:
    """``GET /api/v1/services/{id}/versions/{version}``."""
    path = f"{service_path(service_id)}/versions/{_q(version)}"
    return Call("GET", path, _one(ServiceVersionView))


def deployments(include_ended: bool) -> Call[list[DeploymentView]]:
    """``GET /api/v1/deployments`` (``all=true``: the newest 100 of any state)."""
    return Call("GET", f"{API}/deployments", _many(_DEPLOYMENTS), params=_flags(all=include_ended))


def deployment(deployment_id: str) -> Call[DeploymentView]:
    """``GET /api/v1/deployments/{id}``."""
    return Call("GET", f"{API}/deployments/{_q(deployment_id)}", _one(DeploymentView))


def cancel_deployment(deployment_id: str, force: bool) -> Call[DeploymentView | None]:
    """``DELETE /api/v1/deployments/{id}``: the rollback deployment, or None with ``force``."""
    path = f"{API}/deployments/{_q(deployment_id)}"
    return Call("DELETE", path, _rolled_back, params=_flags(force=force))


def events_params(since: int | None, types: Sequence[str] = (), job: str | None = None) -> Params:
    """Query parameters of ``GET /api/v1/events``: replay from after event ``since``; only
    events of ``types`` (all, if empty) and of ``job`` (all, if None)."""
    params = _params(since=since, job=job)
    if types:
        params["type"] = list(types)
    return params


STREAM_HEADERS = {"Accept": "text/event-stream"}
