"""``AsyncClient``: the asyncio client of the native API."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from corral.client import _calls as calls
from corral.client._sse import EventDecoder
from corral.client.config import load_config
from corral.client.errors import error_from_response
from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from corral.spec.views import (
    AgentView,
    ClusterInfo,
    EventView,
    JobView,
    LogChunk,
    RunView,
    TaskView,
)

T = TypeVar("T")


class AsyncClient:
    """Typed calls of ``/api/v1``; every method raises ``ClientError`` (or ``ApiError``).

    ``url``/``token`` default to ``load_config()``. Use ``async with``, or ``await aclose()``.
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
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=calls.auth_headers(token),
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
        with calls.transport_errors(self.url):
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        return call.finish(response)

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
    ) -> list[TaskView]:
        """Tasks matching every filter given."""
        return await self._send(calls.tasks(state, job, run, agent, limit))

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

    async def drain_agent(self, agent_id: str, draining: bool = True) -> AgentView:
        """Stop (or, with ``draining=False``, resume) placing work on an agent."""
        return await self._send(calls.drain_agent(agent_id, draining))

    async def events(self, since: int | None = None) -> AsyncGenerator[EventView, None]:
        """Follow the event stream (after event ``since`` if given) until the master ends it.

        Wrap it in ``contextlib.aclosing`` so that leaving the loop early closes the stream.
        """
        params = calls.events_params(since)
        with calls.transport_errors(self.url):
            async with self._http.stream(
                "GET",
                calls.EVENTS_PATH,
                params=params,
                headers=calls.STREAM_HEADERS,
                timeout=calls.STREAM_TIMEOUT,
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response)
                decoder = EventDecoder()
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
