"""``AsyncClient``: the asyncio client of the native API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Literal, TypeVar

import httpx

from corral.client import _calls as calls
from corral.client._api import auth_headers
from corral.client._calls import Page
from corral.client._sse import EventDecoder
from corral.client.accounts import AsyncAccounts
from corral.client.config import load_config
from corral.client.errors import ClientError, UnreachableError, error_from_response
from corral.client.masters import Failover, Rotation, Wait, failover
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

# The stream stays open between events, possibly for long: no read timeout on it.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=None)


@contextlib.contextmanager
def transport_errors(url: str) -> Iterator[None]:
    """Translate httpx's network errors into ``ClientError``s that name the master's URL."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as e:
        raise UnreachableError(url, str(e) or type(e).__name__) from None
    except httpx.TransportError as e:
        raise ClientError(f"talking to the corral master at {url} failed: {e!r}") from None


class AsyncClient:
    """Typed calls of ``/api/v1``; every method raises ``ClientError`` (or ``ApiError``).

    ``url``/``token`` default to ``load_config()``; several masters' URLs are separated by
    commas (one that cannot be reached is left for the next). Use ``async with``, or
    ``await aclose()``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if url is None:
            config = load_config()
            url, token = config.url, token or config.token
        self.url = url.rstrip("/")
        self._rotation = Rotation(self.url)  # several masters: separated by commas
        self._http = httpx.AsyncClient(
            headers=auth_headers(token),
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: calls.Call[T]) -> T:
        steps: Failover[httpx.Response] = failover(self._rotation)
        got: httpx.Response | UnreachableError | None = None
        while True:
            try:
                step = steps.send(got)
            except StopIteration as done:
                return call.finish(done.value)
            if isinstance(step, Wait):
                await asyncio.sleep(step.seconds)
                got = None
                continue
            base = self._rotation.urls[step.index]
            try:
                with transport_errors(base):
                    got = await self._http.request(
                        call.method, base + call.path, params=call.params, json=call.body
                    )
            except UnreachableError as e:
                got = e

    @property
    def accounts(self) -> AsyncAccounts:
        """Users, groups and tokens."""
        return AsyncAccounts(self._send)

    async def info(self) -> ClusterInfo:
        """The cluster's name, version, and who the token belongs to."""
        return await self._send(calls.info())

    async def create_job(self, spec: JobSpec) -> JobView:
        """Create a job and start its first run; ``ApiError`` 409 if the name is taken."""
        return await self._send(calls.create_job(spec))

    async def apply_job(self, spec: JobSpec) -> tuple[JobView, bool]:
        """Create or update a job by name; the bool is True when it was created."""
        return await self._send(calls.apply_job(spec))

    async def jobs(self, owner: str | None = None, q: str | None = None) -> list[JobView]:
        """Jobs, newest first, optionally of one owner or matching ``q``."""
        return await self._send(calls.jobs(owner, q))

    async def job(self, name: str) -> JobView:
        """One job; ``ApiError`` 404 if there is none of that name."""
        return await self._send(calls.job(name))

    async def delete_job(self, name: str) -> None:
        """Delete a job; ``ApiError`` 409 while it has unfinished tasks."""
        await self._send(calls.delete_job(name))

    async def kill_job(self, name: str) -> JobView:
        """Kill every unfinished task of a job."""
        return await self._send(calls.kill_job(name))

    async def start_run(self, name: str, arguments: Sequence[str] = ()) -> RunView:
        """Start a new run of a job now, ``arguments`` appended to its command."""
        return await self._send(calls.start_run(name, arguments))

    async def runs(self, name: str) -> list[RunView]:
        """A job's runs, newest first."""
        return await self._send(calls.runs(name))

    async def run(self, name: str, number: int) -> RunView:
        """Run ``number`` of a job."""
        return await self._send(calls.run(name, number))

    async def kill_run(self, name: str, number: int) -> RunView:
        """Kill the unfinished tasks of one run."""
        return await self._send(calls.kill_run(name, number))

    async def tasks(
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
        return await self._send(calls.tasks(state, job, run, agent, limit, after))

    async def task(self, task_id: str) -> TaskView:
        """One task with its state history (``events``)."""
        return await self._send(calls.task(task_id))

    async def kill_task(self, task_id: str) -> TaskView:
        """Kill one task."""
        return await self._send(calls.kill_task(task_id))

    async def logs(
        self, task_id: str, file: calls.LogFile = "stdout", offset: int = 0, length: int = 65536
    ) -> LogChunk:
        """Up to ``length`` bytes of a task's stdout or stderr from ``offset``."""
        return await self._send(calls.logs(task_id, file, offset, length))

    async def agents(self) -> list[AgentView]:
        """Every agent the master knows."""
        return await self._send(calls.agents())

    async def usage(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Literal["user", "group"] = "user",
    ) -> UsageView:
        """What each user (or group) used from ``since`` until ``until`` (default: the last
        day until now): cpu-hours, mem-GiB-hours, gpu-hours and the tasks that ended, by
        outcome (finished, failed, killed, lost, preempted)."""
        return await self._send(calls.usage(since, until, by))

    async def drain_agent(self, agent_id: str, draining: bool = True) -> AgentView:
        """Stop (or, with ``draining=False``, resume) placing work on an agent."""
        return await self._send(calls.drain_agent(agent_id, draining))

    async def services(self) -> list[ServiceView]:
        """Every service, by id, with its live counts and running deployments."""
        return await self._send(calls.services())

    async def service(self, service_id: str) -> ServiceView:
        """One service (``web`` means ``/web``); ``ApiError`` 404 if there is none."""
        return await self._send(calls.service(service_id))

    async def create_service(self, spec: ServiceSpec, force: bool = False) -> DeploymentView:
        """Create a service; answers the deployment that starts it (409 if it exists)."""
        return await self._send(calls.create_service(spec, force))

    async def apply_service(
        self, spec: ServiceSpec, force: bool = False
    ) -> tuple[DeploymentView, bool]:
        """Create or change a service by id; the bool is True when it was created.

        ``force`` cancels deployments that hold the service instead of answering 409.
        """
        return await self._send(calls.apply_service(spec, force))

    async def scale_service(
        self, service_id: str, instances: int, force: bool = False
    ) -> DeploymentView:
        """Change a service's number of instances; restarts nothing."""
        return await self._send(calls.scale_service(service_id, instances, force))

    async def restart_service(self, service_id: str, force: bool = False) -> DeploymentView:
        """Replace every task of a service, rolling, by its upgrade strategy."""
        return await self._send(calls.restart_service(service_id, force))

    async def delete_service(self, service_id: str, force: bool = False) -> DeploymentView:
        """Delete a service; answers the deployment that stops its tasks."""
        return await self._send(calls.delete_service(service_id, force))

    async def service_tasks(self, service_id: str) -> list[TaskView]:
        """The live tasks of a service."""
        return await self._send(calls.service_tasks(service_id))

    async def kill_service_task(
        self, service_id: str, task_id: str, scale: bool = False, force: bool = False
    ) -> TaskView:
        """Kill one task of a service: it is replaced, or with ``scale`` instances drop by one."""
        return await self._send(calls.kill_service_task(service_id, task_id, scale, force))

    async def service_versions(self, service_id: str) -> list[ServiceVersionView]:
        """The versions of a service's spec, newest first."""
        return await self._send(calls.service_versions(service_id))

    async def service_version(self, service_id: str, version: str) -> ServiceVersionView:
        """One version of a service's spec."""
        return await self._send(calls.service_version(service_id, version))

    async def deployments(self, include_ended: bool = False) -> list[DeploymentView]:
        """Running deployments; with ``include_ended`` the newest 100 of any state."""
        return await self._send(calls.deployments(include_ended))

    async def deployment(self, deployment_id: str) -> DeploymentView:
        """One deployment, running or ended."""
        return await self._send(calls.deployment(deployment_id))

    async def cancel_deployment(
        self, deployment_id: str, force: bool = False
    ) -> DeploymentView | None:
        """Cancel a deployment: answers the deployment that rolls it back, or with ``force``
        None (it stops where it stands)."""
        return await self._send(calls.cancel_deployment(deployment_id, force))

    async def events(
        self, since: int | None = None, types: Sequence[str] = (), job: str | None = None
    ) -> AsyncGenerator[EventView, None]:
        """Follow the event stream (after event ``since`` if given) until the master ends it;
        only events of ``types`` and of ``job`` when given.

        Wrap it in ``contextlib.aclosing`` so that leaving the loop early closes the stream.
        """
        params = calls.events_params(since, types, job)
        base = self._rotation.current
        with transport_errors(base):
            async with self._http.stream(
                "GET",
                base + calls.EVENTS_PATH,
                params=params,
                headers=calls.STREAM_HEADERS,
                timeout=STREAM_TIMEOUT,
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response)
                decoder = EventDecoder()
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
