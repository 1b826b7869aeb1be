"""An in-memory cluster for tests and benchmarks: arrange agents and work, plan, assert.

    h = Harness()
    h.add_agents(3, cpus=4, rack="a")
    h.add_tasks(5, group="sim", cpus=1, constraints=[Constraint("hostname", Operator.UNIQUE)])
    p = h.plan()
    assert len(p.placements) == 3 and check_plan(h.snapshot(), h.pending, p) == []

Host ports: ``h.add_agent("a", ports_used=[8080])``, ``h.add_task("web", host_ports=[8080])``;
``h.add_placed("old", "a", host_ports=[8080])`` marks the port used on "a" like its resources.
GPUs: ``h.add_agent("a", gpus=2)`` has indices 0 and 1 (``devices=(1, 3)`` names others);
``h.add_placed("old", "a", devices=[0])`` holds index 0 there; ``where_devices(plan)``.
All-or-nothing: ``h.add_tasks(3, group="mpi", gang="mpi")``. Preemption: ``h.add_placed("big",
"a", owner="alice")``, ``h.add_task("starved", owner="bob")``, then ``p.preemptions``
(``h.now``, ``h.preempt_after`` and ``waiting_since`` for the threshold).

:func:`check_plan` (invariants.py) states the invariants every plan must keep; the property
tests and the benchmark run it on whatever they generate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from corral.scheduler.cohorts import shape_key
from corral.scheduler.invariants import check_plan
from corral.scheduler.model import (
    AgentSnapshot,
    Constraint,
    PlacedTask,
    Plan,
    Quota,
    Resources,
    Snapshot,
    Status,
    Strategy,
    TaskRequest,
)
from corral.scheduler.planner import plan

__all__ = [
    "Harness",
    "check_plan",
    "first_refusals",
    "quota",
    "res",
    "where",
    "where_devices",
]

NOTHING = Resources()


def res(cpus: float = 0, mem: int = 0, disk: int = 0, gpus: int = 0) -> Resources:
    """Resources with cpus in whole cores (converted to millicores)."""
    return Resources(round(cpus * 1000), mem, disk, gpus)


def quota(
    cpus: float | None = None,
    mem: int | None = None,
    gpus: int | None = None,
    tasks: int | None = None,
) -> Quota:
    """A quota with cpus in whole cores; None: no cap on that one."""
    return Quota(None if cpus is None else round(cpus * 1000), mem, gpus, tasks)


class Harness:
    """A cluster under construction; each ``plan()`` is recorded in ``plans``."""

    def __init__(self) -> None:
        self.agents: list[AgentSnapshot] = []
        self.placed: list[PlacedTask] = []
        self.pending: list[TaskRequest] = []
        self.weights: dict[str, float] = {}
        self.quotas: dict[str, Quota] = {}  # per owner (a user)
        self.group_quotas: dict[str, Quota] = {}
        self.owner_groups: dict[str, str] = {}  # owner -> their group
        self.past: dict[str, Resources] = {}  # decayed past usage per owner
        self.preemption = True  # the preempt stage runs: tests see what it would stop
        self.preempt_after = 0.0  # seconds a task waits before it may preempt
        self.now = 0.0  # the plan's time (tasks have waited since 0 unless told otherwise)
        self.plans: list[Plan] = []

    def add_agent(
        self,
        id: str,
        *,
        cpus: float = 4,
        mem: int = 8192,
        disk: int = 0,
        gpus: int = 0,
        used: Resources = NOTHING,
        hostname: str | None = None,
        drivers: Iterable[str] = ("process",),
        schedulable: bool = True,
        ports_used: Iterable[int] = (),
        devices: Sequence[int] = (),
        attributes: Mapping[str, str] | None = None,
        **more_attributes: str,
    ) -> AgentSnapshot:
        """Add an agent; its hostname defaults to its id, keyword extras are attributes.

        ``ports_used``: fixed host ports already held there (by tasks not in ``placed``; see
        :meth:`add_placed` for ones that are). ``devices``: its GPU indices, if not 0..gpus-1.
        """
        merged = {**(attributes or {}), **more_attributes}
        agent = self._add_agent(
            id, res(cpus, mem, disk, gpus), used, hostname, drivers, schedulable, merged, ports_used
        )
        if devices:
            agent = self.agents[-1] = replace(agent, devices=tuple(devices))
        return agent

    def _add_agent(
        self,
        id: str,
        total: Resources,
        used: Resources,
        hostname: str | None,
        drivers: Iterable[str],
        schedulable: bool,
        attributes: Mapping[str, str],
        ports_used: Iterable[int] = (),
    ) -> AgentSnapshot:
        agent = AgentSnapshot(
            id=id,
            hostname=hostname if hostname is not None else id,
            total=total,
            used=used,
            attributes=dict(attributes),
            drivers=frozenset(drivers),
            schedulable=schedulable,
            ports_used=frozenset(ports_used),
        )
        self.agents.append(agent)
        return agent

    def add_agents(
        self,
        n: int,
        *,
        prefix: str = "agent",
        cpus: float = 4,
        mem: int = 8192,
        gpus: int = 0,
        drivers: Iterable[str] = ("process",),
        schedulable: bool = True,
        ports_used: Iterable[int] = (),
        **attributes: str,
    ) -> list[AgentSnapshot]:
        """Add ``n`` alike agents named ``<prefix>-00``, ``<prefix>-01``… (numbering continues)."""
        start = len(self.agents)
        ports = tuple(ports_used)
        return [
            self._add_agent(
                f"{prefix}-{start + i:02d}",
                res(cpus, mem, 0, gpus),
                NOTHING,
                None,
                drivers,
                schedulable,
                attributes,
                ports,
            )
            for i in range(n)
        ]

    def add_task(
        self,
        id: str,
        *,
        group: str = "g",
        cpus: float = 1,
        mem: int = 128,
        disk: int = 0,
        gpus: int = 0,
        driver: str = "process",
        constraints: Sequence[Constraint] = (),
        strategy: Strategy = Strategy.BINPACK,
        owner: str = "",
        priority: int = 0,
        order: int | None = None,
        host_ports: Iterable[int] = (),
        gang: str | None = None,
        gang_node: int | None = None,
        gang_size: int = 0,
        waiting_since: float = 0.0,
    ) -> TaskRequest:
        """Add a pending task; ``order`` defaults to the order tasks were added in.

        ``host_ports``: the exact host ports it needs (a required service port, a fixed
        docker ``hostPort``). ``gang``: the all-or-nothing group it belongs to; ``gang_node``
        its node in a gang of nodes, ``gang_size`` the gang's members in all.
        ``waiting_since``: when it began to wait (preemption's threshold counts from it).
        """
        task = TaskRequest(
            id=id,
            group=group,
            resources=res(cpus, mem, disk, gpus),
            driver=driver,
            constraints=tuple(constraints),
            strategy=strategy,
            owner=owner,
            priority=priority,
            order=len(self.pending) if order is None else order,
            host_ports=tuple(host_ports),
            gang=gang,
            gang_node=gang_node,
            gang_size=gang_size,
            waiting_since=waiting_since,
        )
        self.pending.append(task)
        return task

    def add_tasks(
        self,
        n: int,
        *,
        group: str = "g",
        cpus: float = 1,
        mem: int = 128,
        gpus: int = 0,
        driver: str = "process",
        constraints: Sequence[Constraint] = (),
        strategy: Strategy = Strategy.BINPACK,
        owner: str = "",
        priority: int = 0,
        host_ports: Iterable[int] = (),
        gang: str | None = None,
        tasks_per_node: int | None = None,
    ) -> list[TaskRequest]:
        """Add ``n`` alike tasks of one group, named ``<group>-0``, ``<group>-1``…

        With ``tasks_per_node`` (and ``gang``) they are a gang of nodes: task ``i`` is on node
        ``i // tasks_per_node``.
        """
        ports = tuple(host_ports)
        return [
            self.add_task(
                f"{group}-{i}",
                group=group,
                cpus=cpus,
                mem=mem,
                gpus=gpus,
                driver=driver,
                constraints=constraints,
                strategy=strategy,
                owner=owner,
                priority=priority,
                host_ports=ports,
                gang=gang,
                gang_node=None if tasks_per_node is None else i // tasks_per_node,
                gang_size=0 if tasks_per_node is None else n,
            )
            for i in range(n)
        ]

    def add_placed(
        self,
        task_id: str,
        agent_id: str,
        *,
        group: str = "g",
        owner: str = "",
        cpus: float = 1,
        mem: int = 128,
        host_ports: Iterable[int] = (),
        priority: int = 0,
        devices: Sequence[int] = (),
        preemptible: bool = True,
        stopping: bool = False,
    ) -> PlacedTask:
        """Add a task already running on an agent; its resources, host ports and GPU indices
        (``devices``: it holds one GPU per index) count as used. ``preemptible``: a
        preemption may stop it; ``stopping``: it was asked to stop already."""
        resources = res(cpus, mem, gpus=len(devices))
        task = PlacedTask(
            task_id,
            group,
            agent_id,
            owner,
            resources,
            priority,
            tuple(devices),
            preemptible,
            stopping,
        )
        ports = frozenset(host_ports)
        self.placed.append(task)
        for i, agent in enumerate(self.agents):
            if agent.id == agent_id:
                self.agents[i] = replace(
                    agent,
                    used=agent.used + task.resources,
                    ports_used=agent.ports_used | ports,
                    devices_used=agent.devices_used | frozenset(devices),
                )
        return task

    def snapshot(self) -> Snapshot:
        """The snapshot of the cluster as arranged so far."""
        return Snapshot(
            agents=tuple(self.agents),
            placed=tuple(self.placed),
            weights=dict(self.weights),
            quotas=dict(self.quotas),
            group_quotas=dict(self.group_quotas),
            owner_groups=dict(self.owner_groups),
            past=dict(self.past),
            preemption=self.preemption,
            preempt_after=self.preempt_after,
            now=self.now,
        )

    def plan(self) -> Plan:
        """Plan the pending tasks on the cluster; record and return the plan."""
        result = plan(self.snapshot(), self.pending)
        self.plans.append(result)
        return result


def where(result: Plan) -> dict[str, str]:
    """Task id -> agent id of a plan's placements."""
    return {p.task_id: p.agent_id for p in result.placements}


def where_devices(result: Plan) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Task id -> (agent id, GPU indices) of a plan's placements."""
    return {p.task_id: (p.agent_id, p.devices) for p in result.placements}


def first_refusals(pending: Sequence[TaskRequest], result: Plan) -> dict[str, Status]:
    """Task id -> status of the first task refused in each cohort, in decision order.

    ``plan`` gives later tasks of a cohort the reason found for the first, where
    ``plan_exhaustive`` re-counts: compare these to compare the reasons of the two.
    """
    tasks = {t.id: t for t in pending}
    seen: set[tuple[object, ...]] = set()
    first = {}
    for task_id, status in result.waiting.items():
        t = tasks[task_id]
        key = (t.group, t.owner, t.gang, shape_key(t))  # the cohort, as cohorts.py forms it
        if key not in seen:
            seen.add(key)
            first[task_id] = status
    return first
