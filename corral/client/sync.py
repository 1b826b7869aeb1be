"""``Client``: the blocking client of the native API."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Literal, TypeVar

from corral.client import _calls as calls
from corral.client._calls import Page
from corral.client._http import Blocking
from corral.client._sse import EventDecoder
from corral.client.accounts import Accounts
from corral.spec.jobs import JobSpec
from corral.spec.services import ServiceSpec
from corral.spec.states import TaskState
from corral.spec.views import (
    AgentView,
    ClusterInfo,
    DeploymentView,
    EventView,
    JobView,
    LogChunk,
    RunView,
    ServiceVersionView,
    ServiceView,
    TaskView,
    UsageView,
)

T = TypeVar("T")


class Client(Blocking):
    """Typed calls of ``/api/v1``; every method raises ``ClientError`` (or ``ApiError``).

    ``Client(url=None, token=None, *, timeout=10.0)``: ``url``/``token`` default to
    ``load_config()``; ``ClientError`` for a URL that is not ``http(s)://HOST[:PORT][/PREFIX]``.
    Use as a context manager, or ``close()``. It talks over one kept-alive connection (the
    standard library's, which starts faster than httpx): threads sharing a client take turns.
    """

    def _send(self, call: calls.Call[T]) -> T:
        return call.finish(self._http.request(call.method, call.path, call.params, call.body))

    @property
    def accounts(self) -> Accounts:
        """Users, groups and tokens."""
        return Accounts(self._send)

    def info(self) -> ClusterInfo:
        """The cluster's name, version, and who the token belongs to."""
        return self._send(calls.info())

    def create_job(self, spec: JobSpec) -> JobView:
        """Create a job and start its first run; ``ApiError`` 409 if the name is taken."""
        return self._send(calls.create_job(spec))

    def apply_job(self, spec: JobSpec) -> tuple[JobView, bool]:
        """Create or update a job by name; the bool is True when it was created."""
        return self._send(calls.apply_job(spec))

    def jobs(self, owner: str | None = None, q: str | None = None) -> list[JobView]:
        """Jobs, newest first, optionally of one owner or matching ``q``."""
        return self._send(calls.jobs(owner, q))

    def job(self, name: str) -> JobView:
        """One job; ``ApiError`` 404 if there is none of that name."""
        return self._send(calls.job(name))

    def delete_job(self, name: str) -> None:
        """Delete a job; ``ApiError`` 409 while it has unfinished tasks."""
        self._send(calls.delete_job(name))

    def kill_job(self, name: str) -> JobView:
        """Kill every unfinished task of a job."""
        return self._send(calls.kill_job(name))

    def start_run(self, name: str, arguments: Sequence[str] = ()) -> RunView:
        """Start a new run of a job now, ``arguments`` appended to its command."""
        return self._send(calls.start_run(name, arguments))

    def runs(self, name: str) -> list[RunView]:
        """A job's runs, newest first."""
        return self._send(calls.runs(name))

    def run(self, name: str, number: int) -> RunView:
        """Run ``number`` of a job."""
        return self._send(calls.run(name, number))

    def kill_run(self, name: str, number: int) -> RunView:
        """Kill the unfinished tasks of one run."""
        return self._send(calls.kill_run(name, number))

    def tasks(
        self,
        state: TaskState | str | None = None,
        job: str | None = None,
        run: int | None = None,
        agent: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[TaskView]:
        """Tasks matching every filter given, in creation order: at most ``limit``, from the
        cursor ``after`` (the ``next`` of the page before)."""
        return self._send(calls.tasks(state, job, run, agent, limit, after))

    def task(self, task_id: str) -> TaskView:
        """One task with its state history (``events``)."""
        return self._send(calls.task(task_id))

    def kill_task(self, task_id: str) -> TaskView:
        """Kill one task."""
        return self._send(calls.kill_task(task_id))

    def logs(
        self, task_id: str, file: calls.LogFile = "stdout", offset: int = 0, length: int = 65536
    ) -> LogChunk:
        """Up to ``length`` bytes of a task's stdout or stderr from ``offset``."""
        return self._send(calls.logs(task_id, file, offset, length))

    def agents(self) -> list[AgentView]:
        """Every agent the master knows."""
        return self._send(calls.agents())

    def usage(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Literal["user", "group"] = "user",
    ) -> UsageView:
        """What each user (or group) used from ``since`` until ``until`` (default: the last
        day until now): cpu-hours, mem-GiB-hours, gpu-hours and the tasks that ended, by
        outcome (finished, failed, killed, lost, preempted)."""
        return self._send(calls.usage(since, until, by))

    def drain_agent(self, agent_id: str, draining: bool = True) -> AgentView:
        """Stop (or, with ``draining=False``, resume) placing work on an agent."""
        return self._send(calls.drain_agent(agent_id, draining))

    def services(self) -> list[ServiceView]:
        """Every service, by id, with its live counts and running deployments."""
        return self._send(calls.services())

    def service(self, service_id: str) -> ServiceView:
        """One service (``web`` means ``/web``); ``ApiError`` 404 if there is none."""
        return self._send(calls.service(service_id))

    def create_service(self, spec: ServiceSpec, force: bool = False) -> DeploymentView:
        """Create a service; answers the deployment that starts it (409 if it exists)."""
        return self._send(calls.create_service(spec, force))

    def apply_service(self, spec: ServiceSpec, force: bool = False) -> tuple[DeploymentView, bool]:
        """Create or change a service by id; the bool is True when it was created.

        ``force`` cancels deployments that hold the service instead of answering 409.
        """
        return self._send(calls.apply_service(spec, force))

    def scale_service(self, service_id: str, instances: int, force: bool = False) -> DeploymentView:
        """Change a service's number of instances; restarts nothing."""
        return self._send(calls.scale_service(service_id, instances, force))

    def restart_service(self, service_id: str, force: bool = False) -> DeploymentView:
        """Replace every task of a service, rolling, by its upgrade strategy."""
        return self._send(calls.restart_service(service_id, force))

    def delete_service(self, service_id: str, force: bool = False) -> DeploymentView:
        """Delete a service; answers the deployment that stops its tasks."""
        return self._send(calls.delete_service(service_id, force))

    def service_tasks(self, service_id: str) -> list[TaskView]:
        """The live tasks of a service."""
        return self._send(calls.service_tasks(service_id))

    def kill_service_task(
        self, service_id: str, task_id: str, scale: bool = False, force: bool = False
    ) -> TaskView:
        """Kill one task of a service: it is replaced, or with ``scale`` instances drop by one."""
        return self._send(calls.kill_service_task(service_id, task_id, scale, force))

    def service_versions(self, service_id: str) -> list[ServiceVersionView]:
        """The versions of a service's spec, newest first."""
        return self._send(calls.service_versions(service_id))

    def service_version(self, service_id: str, version: str) -> ServiceVersionView:
        """One version of a service's spec."""
        return self._send(calls.service_version(service_id, version))

    def deployments(self, include_ended: bool = False) -> list[DeploymentView]:
        """Running deployments; with ``include_ended`` the newest 100 of any state."""
        return self._send(calls.deployments(include_ended))

    def deployment(self, deployment_id: str) -> DeploymentView:
        """One deployment, running or ended."""
        return self._send(calls.deployment(deployment_id))

    def cancel_deployment(self, deployment_id: str, force: bool = False) -> DeploymentView | None:
        """Cancel a deployment: answers the deployment that rolls it back, or with ``force``
        None (it stops where it stands)."""
        return self._send(calls.cancel_deployment(deployment_id, force))

    def events(
        self, since: int | None = None, types: Sequence[str] = (), job: str | None = None
    ) -> Generator[EventView, None, None]:
        """Follow the event stream (after event ``since`` if given) until the master ends it;
        only events of ``types`` and of ``job`` when given.

        Close the iterator (or leave the loop and let it be collected) to close the stream.
        """
        params = calls.events_params(since, types, job)
        with self._http.stream(calls.EVENTS_PATH, params, calls.STREAM_HEADERS) as lines:
            decoder = EventDecoder()
            for line in lines:
                event = decoder.feed(line)
                if event is not None:
                    yield event
