"""Helpers the agent tests share: free host ports, an agent runtime without master, deadlines."""

from __future__ import annotations

import asyncio
import random
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from corral.agent.executors.base import Executor
from corral.agent.runtime import Agent, AgentConfig
from corral.clock import Clock
from corral.spec.protocol import AgentResources, StatusUpdate, TaskLaunch
from corral.spec.services import HealthCheckStatus
from corral.spec.states import TaskState

DEADLINE = 20.0  # seconds; generous: a test that needs it has hung


def free_range(size: int) -> tuple[int, int]:
    """``size`` consecutive TCP ports that are free now, somewhere in 40000-59999.

    The start is random, so test runs side by side rarely pick the same ports.
    """
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(40000, 60000 - size)
        probes = [socket.socket() for _ in range(size)]
        try:
            for offset, probe in enumerate(probes):
                probe.bind(("", start + offset))
            return start, start + size - 1
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError("no free port range")


def refusing_port() -> socket.socket:
    """A socket bound to a port nobody listens on: connecting to it is refused. Close it after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def agent_of_scripted_master(
    master: Callable[[ServerConnection], Awaitable[None]], data_dir: Path
) -> AsyncIterator[Agent]:
    """An agent without executors, running and dialling a WebSocket server whose every
    connection ``master`` handles (the test plays the master's side); stopped on exit."""
    async with serve(master, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = AgentConfig(
            master_urls=[f"http://127.0.0.1:{port}"],
            token=None,
            data_dir=data_dir,
            hostname="node-test",
            resources=AgentResources(cpus=1, mem=256, disk=0),
        )
        agent = Agent(config, {})
        running = asyncio.create_task(agent.run())
        try:
            yield agent
        finally:
            await agent.stop(timeout=5)
            running.cancel()


def launch(**fields: Any) -> TaskLaunch:
    """A process launch with a unique id, small resources and the given fields."""
    base: dict[str, Any] = {"task_id": f"test-{uuid.uuid4().hex[:12]}", "job": "tests"}
    return TaskLaunch.model_validate({"cpus": 0.5, "mem": 128, **base, **fields})


class RecordingAgent(Agent):
    """An agent that is never connected; the tests read its status updates as they are made."""

    def __init__(
        self, data_dir: Path, executors: dict[str, Executor], clock: Clock | None = None
    ) -> None:
        config = AgentConfig(
            master_urls=["http://127.0.0.1:9"],
            token=None,
            data_dir=data_dir,
            hostname="node-test",
            resources=AgentResources(cpus=2, mem=1024, disk=0),
        )
        super().__init__(config, executors, clock)
        self.updates: list[StatusUpdate] = []
        self._changed = asyncio.Event()

    async def report(
        self,
        task_id: str,
        state: TaskState,
        reason: str = "",
        exit_code: int | None = None,
        ports: list[int] | None = None,
        healthy: bool | None = None,
        checks: list[HealthCheckStatus] | None = None,
    ) -> None:
        """Report as the agent does, and keep the update for the test."""
        await super().report(task_id, state, reason, exit_code, ports, healthy, checks)
        self.updates.append(self.journal.unacked()[-1])
        self._changed.set()

    def of(self, task_id: str) -> list[StatusUpdate]:
        """The updates of one task so far."""
        return [u for u in self.updates if u.task_id == task_id]

    async def update(
        self, task_id: str, matches: Callable[[StatusUpdate], bool], what: str
    ) -> StatusUpdate:
        """The first update of ``task_id`` that ``matches``, waiting for it at most DEADLINE."""
        try:
            async with asyncio.timeout(DEADLINE):
                while True:
                    found = [u for u in self.of(task_id) if matches(u)]
                    if found:
                        return found[0]
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    async def ended(self, task_id: str) -> StatusUpdate:
        """The task's terminal update, waiting for it at most DEADLINE."""
        return await self.update(task_id, lambda u: u.state.terminal, "the task's end")

    async def health(self, task_id: str) -> StatusUpdate:
        """The task's first health report."""
        return await self.update(task_id, lambda u: u.healthy is not None, "a health report")

    def health_reports(self, task_id: str) -> list[tuple[bool | None, str]]:
        """(healthy, reason) of each health report of the task so far."""
        return [(u.healthy, u.reason) for u in self.of(task_id) if u.healthy is not None]
