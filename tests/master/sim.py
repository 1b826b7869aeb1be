"""A master driven step by step, with simulated agents: no loops, no sockets, no clock.

A test arranges agents, calls the API operations, then ``settle()`` runs the service and
scheduling passes until nothing changes. Agents answer launches only when told to, so every
state a task goes through is chosen by the test.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from corral.master.master import Master
from corral.master.records import AgentSession, LiveTask
from corral.spec.protocol import AgentResources, Hello, StatusUpdate
from corral.spec.services import ServiceSpec
from corral.spec.states import TaskState
from corral.store.store import Store


class Clock:
    """Moves only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


class SimAgent:
    """An agent that records what the master tells it and reports what the test says."""

    def __init__(
        self,
        sim: Sim,
        name: str,
        cpus: float,
        mem: int,
        drivers: list[str] | None = None,
        gpus: int = 0,
        batched_launches: bool = True,
    ) -> None:
        self.sim = sim
        self.batched_launches = batched_launches  # False: an agent of an earlier version
        self.name = name
        self.cpus, self.mem, self.gpus = cpus, mem, gpus
        self.drivers = drivers or ["process"]
        self.sent: list[dict[str, Any]] = []
        self.seq = itertools.count(1)
        self.session = AgentSession(self._receive)

    async def _receive(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def connect(self, running: list[str] | None = None) -> None:
        await self.connect_with(AgentSession(self._receive), running)

    async def connect_with(self, session: AgentSession, running: list[str] | None = None) -> None:
        """Say hello on ``session`` (a test may give one that records its hang-up)."""
        self.session = session
        hello = Hello(
            agent_id=self.name,
            hostname=self.name,
            resources=AgentResources(cpus=self.cpus, mem=self.mem, disk=10_000, gpus=self.gpus),
            drivers=self.drivers,
            running=running or [],
            batched_launches=self.batched_launches,
        )
        await self.sim.master.agents.hello(hello, self.session)

    def disconnect(self) -> None:
        agent = self.sim.master.state.agents[self.name]
        self.sim.master.agents.disconnected(agent, self.session)

    def launches(self) -> list[dict[str, Any]]:
        """Every launch it was sent, in order, whether alone (``launch``) or several in one
        message (``launches``)."""
        found: list[dict[str, Any]] = []
        for m in self.sent:
            if m["type"] == "launch":
                found.append(m["task"])
            elif m["type"] == "launches":
                found += m["tasks"]
        return found

    def launched(self) -> list[str]:
        return [t["task_id"] for t in self.launches()]

    def killed(self) -> list[str]:
        return [m["task_id"] for m in self.sent if m["type"] == "kill"]

    def report(self, task_id: str, state: TaskState, healthy: bool | None = None) -> None:
        update = StatusUpdate(
            seq=next(self.seq),
            task_id=task_id,
            state=state,
            time=self.sim.clock.now(),
            healthy=healthy,
            reason="" if healthy is None else ("ok" if healthy else "HTTP 500"),
        )
        agent = self.sim.master.state.agents[self.name]
        self.sim.master.agents.apply_updates(agent, [update])


class Sim:
    """A master on a temporary store with simulated agents."""

    def __init__(self, store: Path | str) -> None:
        """A master on a SQLite store in the directory ``store``, or on the store at the URL
        ``store``."""
        self.clock = Clock()
        self.store = Store.in_dir(store) if isinstance(store, Path) else Store(store)
        self.store.migrate()
        self.master = Master(self.store, self.clock)
        self.master.agents.load()
        self.master.state.load()
        self.master.services.load()
        self.master.fair_share.load()
        self.agents: dict[str, SimAgent] = {}

    async def add_agent(
        self,
        name: str,
        cpus: float = 4,
        mem: int = 4096,
        drivers: list[str] | None = None,
        gpus: int = 0,
        batched_launches: bool = True,
    ) -> SimAgent:
        agent = SimAgent(self, name, cpus, mem, drivers, gpus, batched_launches)
        self.agents[name] = agent
        await agent.connect()
        return agent

    async def settle(self, rounds: int = 10) -> None:
        """Run service and scheduling passes until a pass changes nothing."""
        for _ in range(rounds):
            before = self._fingerprint()
            await self.master.service_loop.run_once()
            await self.master.scheduler.run_once()
            await asyncio.sleep(0)  # let kills sent from tasks go out
            if self._fingerprint() == before:
                return

    def _fingerprint(self) -> tuple[Any, ...]:
        tasks = tuple(
            sorted((t.id, t.state, t.kill_requested) for t in self.master.state.tasks.values())
        )
        deps = tuple(
            sorted((d.id, d.current_step) for d in self.master.services.deployments.values())
        )
        return tasks, deps

    def live(self, service_id: str) -> list[LiveTask]:
        return sorted(
            (t for t in self.master.state.tasks.values() if t.job == service_id),
            key=lambda t: t.created_at,
        )

    def wanted(self, service_id: str) -> list[LiveTask]:
        return [t for t in self.live(service_id) if not t.kill_requested]

    def run_all(self, service_id: str, healthy: bool | None = None) -> None:
        """Every placed task of the service reports RUNNING (and health, if given)."""
        for t in self.live(service_id):
            if t.state in (TaskState.STAGING, TaskState.STARTING) and not t.kill_requested:
                agent = self.agents[t.agent_id or ""]
                agent.report(t.id, TaskState.RUNNING)
                if healthy is not None:
                    agent.report(t.id, TaskState.RUNNING, healthy=healthy)

    def confirm_kills(self) -> None:
        """Agents report KILLED for every task they were told to kill."""
        for agent in self.agents.values():
            for tid in agent.killed():
                live = self.master.state.tasks.get(tid)
                if live is not None and live.agent_id == agent.name:
                    agent.report(tid, TaskState.KILLED)

    def deploy(self, doc: dict[str, Any]) -> str:
        spec = ServiceSpec.model_validate(doc)
        return self.master.services.deploy([spec], "ann").id

    def close(self) -> None:
        self.store.close()
