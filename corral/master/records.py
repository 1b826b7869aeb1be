"""The master's in-memory view of live work and agents, loaded from the store at start.

The store is the truth; these records are a cache of what is not finished yet, so the
scheduling loop never has to query for it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.scheduler.model import Constraint, Operator, Resources, Strategy, TaskRequest
from corral.spec.protocol import GangMember, GpuDevice, TaskLaunch
from corral.spec.services import HealthCheckStatus
from corral.spec.states import AgentState, TaskState
from corral.store.rows import Rule, TaskRow

SendFn = Callable[[dict[str, Any]], Awaitable[None]]
HangupFn = Callable[[], Coroutine[Any, Any, None]]

_order = itertools.count()


def resources_of(launch: Mapping[str, Any]) -> Resources:
    """Resources given in user units (a launch document, an agent's offer) in the core's exact
    units."""
    return Resources(
        millicpus=round(float(launch["cpus"]) * 1000),
        mem=int(launch["mem"]),
        disk=int(launch.get("disk", 0)),
        gpus=int(launch.get("gpus", 0)),
    )


_STRATEGIES = {s.value: s for s in Strategy}


@functools.lru_cache(maxsize=1024)
def _constraints(rules: tuple[Rule, ...]) -> tuple[Constraint, ...]:
    return tuple(Constraint(r.field, Operator(r.operator), r.value) for r in rules)


class Cohort:
    """One cohort of waiting tasks (``waiting.cohort_of``): the same object for all of them.
    Keeps why its members that the last pass left out wait, and that pass's number: they read
    it (``LiveTask.waiting``) instead of being told one by one."""

    __slots__ = ("__weakref__", "noted", "noted_in")

    def __init__(self) -> None:
        self.noted = ""
        self.noted_in = 0


@dataclass(slots=True)
class LiveTask:
    """A task that is not finished: PENDING, STAGING, STARTING or RUNNING.

    ``row`` is what it was created as; the rest is what has happened to it since.
    """

    row: TaskRow
    state: TaskState
    agent_id: str | None = None
    not_before: float | None = None
    kill_requested: bool = False
    healthy: bool | None = None  # the last health check's verdict (None: none yet, no checks)
    # Each health check's record as the agent last reported it; kept in memory only, as
    # Marathon keeps them (None: none reported since this master started).
    checks: list[HealthCheckStatus] | None = None
    started_at: float | None = None  # when it became RUNNING
    ports: tuple[int, ...] = ()  # the host ports its agent gave it (reported with RUNNING)
    health: str | None = None  # the last health check's message
    preempted_by: str | None = None  # the task it is being stopped for (a preemption)
    order: int = field(default_factory=lambda: next(_order))
    # What the scheduling core was last asked to place for it (waiting.request_of): made
    # once while it waits, not once per pass.
    request: TaskRequest | None = None
    # Its cohort in the core's sense (waiting.cohort_of), the same object for every task of
    # it: the waiting room files it there, and a pass cuts each cohort to the free room.
    cohort: Cohort | None = None
    # Why it waited when a pass last planned it, and that pass's number (``waiting``).
    noted: str = ""
    noted_in: int = 0

    @property
    def waiting(self) -> str:
        """Why it is not placed yet: what the last pass said of it, or of its cohort's members
        that pass left out ("" before any pass, and once placed)."""
        cohort = self.cohort
        if cohort is not None and cohort.noted_in > self.noted_in:
            return cohort.noted
        return self.noted

    # What the scheduler asks of it: read from its row's packed launch, which tasks of one
    # array share, so a waiting task costs its record and its row only.

    @property
    def resources(self) -> Resources:
        """What it holds on its agent once placed."""
        return self.row.launch.facts.resources

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        """Its placement constraints."""
        return _constraints(self.row.rules)

    @property
    def strategy(self) -> Strategy:
        """Bin-packing or spreading."""
        return _STRATEGIES[self.row.strategy]

    @property
    def host_paths(self) -> tuple[str, ...]:
        """The host paths its volumes mount."""
        return self.row.launch.facts.host_paths

    @property
    def privileged(self) -> bool:
        """Whether it is a privileged container."""
        return self.row.launch.facts.privileged

    @property
    def host_ports(self) -> tuple[int, ...]:
        """The host ports it needs exactly."""
        return self.row.host_ports

    @property
    def driver(self) -> str:
        """The executor it runs on."""
        return self.row.launch.facts.driver

    @property
    def gang(self) -> GangMember | None:
        """Its place in its gang (None: not a gang's rank)."""
        return self.row.launch.gang

    @property
    def health_checked(self) -> bool:
        """Whether it has health checks."""
        return self.row.launch.facts.health_checked

    @classmethod
    def pending(cls, row: TaskRow) -> LiveTask:
        """A task just created from ``row``."""
        return cls(row, TaskState.PENDING, not_before=row.not_before)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> LiveTask:
        """Build from a ``tasks`` row read from the store."""
        return cls(
            TaskRow.stored(row),
            TaskState(row["state"]),
            agent_id=row["agent_id"],
            not_before=row["not_before"],
            kill_requested=bool(row["kill_requested"]),
            healthy=row.get("healthy"),
            started_at=row.get("started_at"),
            ports=tuple(row.get("ports") or ()),
            health=row.get("health"),
            preempted_by=row.get("preempted_by"),
        )

    @property
    def id(self) -> str:
        """The task's id."""
        return self.row.id

    @property
    def job(self) -> str:
        """The job's name, or the service's id."""
        return self.row.job

    @property
    def run(self) -> int:
        """The run of its job (the configuration number of a service's task)."""
        return self.row.run

    @property
    def slot(self) -> int:
        """Its slot in the run."""
        return self.row.slot

    @property
    def idx(self) -> int:
        """The value of ``{index}``."""
        return self.row.idx

    @property
    def attempt(self) -> int:
        """0 for the first attempt of its slot."""
        return self.row.attempt

    @property
    def owner(self) -> str:
        """Who submitted it."""
        return self.row.owner

    @property
    def priority(self) -> int:
        """Its job's or service's priority."""
        return self.row.priority

    @property
    def launch(self) -> TaskLaunch:
        """The launch message for its agent (with the GPU indices it was given)."""
        return self.row.launch_message

    @property
    def devices(self) -> tuple[int, ...]:
        """The GPU indices it holds on its agent (none before it is placed)."""
        return self.row.devices

    @property
    def created_at(self) -> float:
        """When it was created."""
        return self.row.created_at

    @property
    def service(self) -> bool:
        """True for a task of a service (service ids are paths; job names are not)."""
        return self.job.startswith("/")


class AgentSession:
    """One live connection to an agent: sends messages, and matches answers to reads.

    ``hangup`` ends the connection itself; closing a session calls it, so that a session the
    master gave up on is closed on both ends and the agent dials again (and is reconciled).
    """

    def __init__(self, send: SendFn, hangup: HangupFn | None = None) -> None:
        self._send = send
        self._hangup = hangup
        self._hanging_up: asyncio.Task[None] | None = None
        self._reads: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_read = itertools.count(1)
        self.closed = False
        self.on_close: Callable[[], None] | None = None  # the dispatcher's, called once

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message; a closed connection drops it (reconciliation repairs that)."""
        if self.closed:
            return
        try:
            await self._send(message)
        except (OSError, RuntimeError, ConnectionError):
            # The socket died under us (Starlette raises RuntimeError once it is closed).
            # Anything else is a bug of ours and must surface.
            self.close()

    async def request_read(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a ``read`` and wait for its ``read_result``."""
        rid = next(self._next_read)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reads[rid] = fut
        try:
            await self.send({**message, "request_id": rid})
            async with asyncio.timeout(timeout):  # not wait_for: see corral.waits
                return await fut
        finally:
            self._reads.pop(rid, None)

    def answer_read(self, result: dict[str, Any]) -> None:
        """Deliver a ``read_result`` to whoever asked."""
        fut = self._reads.get(int(result["request_id"]))
        if fut is not None and not fut.done():
            fut.set_result(result)

    def close(self) -> None:
        """Mark closed, fail pending reads and hang up the connection. Idempotent."""
        if not self.closed and self.on_close is not None:
            self.on_close()
        self.closed = True
        for fut in self._reads.values():
            if not fut.done():
                fut.set_exception(ConnectionError("agent disconnected"))
        if self._hangup is not None and self._hanging_up is None:
            self._hanging_up = asyncio.get_running_loop().create_task(self._hangup())


@dataclass(slots=True)
class AgentRecord:
    """An agent as the master tracks it."""

    id: str
    hostname: str
    total: Resources
    attributes: dict[str, str]
    drivers: frozenset[str]
    state: AgentState
    last_seq: int
    registered_at: float
    cgroups: str = ""
    volume_roots: tuple[str, ...] = ()
    privileged: bool = False
    gpus: tuple[GpuDevice, ...] = ()  # its GPUs by index, as many as total.gpus counts
    used: Resources = field(default_factory=Resources)
    last_heartbeat: float | None = None  # wall clock, for display
    silent_since: float = 0.0  # monotonic time of the last sign of life
    connected: bool = False  # while the dispatcher holds a live session of it
    batched_launches: bool = False  # its connection takes ``launches`` (its hello said so)
