"""An in-memory cluster for tests and benchmarks: arrange agents and work, plan, assert.

    h = Harness()
    h.add_agents(3, cpus=4, rack="a")
    h.add_tasks(5, group="sim", cpus=1, constraints=[Constraint("hostname", Operator.UNIQUE)])
    p = h.plan()
    assert len(p.placements) == 3 and check_plan(h.snapshot(), h.pending, p) == []

Host ports: ``h.add_agent("a", ports_used=[8080])``, ``h.add_task("web", host_ports=[8080])``;
``h.add_placed("old", "a", host_ports=[8080])`` marks the port used on "a" like its resources.

:func:`check_plan` states the invariants every plan must keep; the property tests and the
benchmark run it on whatever they generate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from corral.scheduler.cohorts import shape_key
from corral.scheduler.feasibility import check_privilege, check_volumes, field_value
from corral.scheduler.model import (
    AgentSnapshot,
    Constraint,
    Operator,
    PlacedTask,
    Plan,
    Resources,
    Snapshot,
    Strategy,
    TaskRequest,
)
from corral.scheduler.planner import plan

NOTHING = Resources()


def res(cpus: float = 0, mem: int = 0, disk: int = 0, gpus: int = 0) -> Resources:
    """Resources with cpus in whole cores (converted to millicores)."""
    return Resources(round(cpus * 1000), mem, disk, gpus)


class Harness:
    """A cluster under construction; each ``plan()`` is recorded in ``plans``."""

    def __init__(self) -> None:
        self.agents: list[AgentSnapshot] = []
        self.placed: list[PlacedTask] = []
        self.pending: list[TaskRequest] = []
        self.weights: dict[str, float] = {}
        self.quotas: dict[str, Resources] = {}
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
        attributes: Mapping[str, str] | None = None,
        **more_attributes: str,
    ) -> AgentSnapshot:
        """Add an agent; its hostname defaults to its id, keyword extras are attributes.

        ``ports_used``: fixed host ports already held there (by tasks not in ``placed``; see
        :meth:`add_placed` for ones that are).
        """
        merged = {**(attributes or {}), **more_attributes}
        return self._add_agent(
            id, res(cpus, mem, disk, gpus), used, hostname, drivers, schedulable, merged, ports_used
        )

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
    ) -> TaskRequest:
        """Add a pending task; ``order`` defaults to the order tasks were added in.

        ``host_ports``: the exact host ports it needs (a required service port, a fixed
        docker ``hostPort``).
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
    ) -> list[TaskRequest]:
        """Add ``n`` alike tasks of one group, named ``<group>-0``, ``<group>-1``…"""
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
    ) -> PlacedTask:
        """Add a task already running on an agent; its resources and host ports count as used."""
        task = PlacedTask(task_id, group, agent_id, owner, res(cpus, mem))
        ports = frozenset(host_ports)
        self.placed.append(task)
        for i, agent in enumerate(self.agents):
            if agent.id == agent_id:
                self.agents[i] = replace(
                    agent,
                    used=agent.used + task.resources,
                    ports_used=agent.ports_used | ports,
                )
        return task

    def snapshot(self) -> Snapshot:
        """The snapshot of the cluster as arranged so far."""
        return Snapshot(
            agents=tuple(self.agents),
            placed=tuple(self.placed),
            weights=dict(self.weights),
            quotas=dict(self.quotas),
        )

    def plan(self) -> Plan:
        """Plan the pending tasks on the cluster; record and return the plan."""
        result = plan(self.snapshot(), self.pending)
        self.plans.append(result)
        return result


def where(result: Plan) -> dict[str, str]:
    """Task id -> agent id of a plan's placements."""
    return {p.task_id: p.agent_id for p in result.placements}


def first_refusals(pending: Sequence[TaskRequest], result: Plan) -> dict[str, str]:
    """Task id -> reason of the first task refused in each cohort, in decision order.

    ``plan`` gives later tasks of a cohort the reason found for the first, where
    ``plan_exhaustive`` re-counts: compare these to compare the reasons of the two.
    """
    tasks = {t.id: t for t in pending}
    seen: set[tuple[object, ...]] = set()
    first = {}
    for task_id, reason in result.unplaced.items():
        t = tasks[task_id]
        key = (t.group, t.owner, shape_key(t))  # the cohort, as cohorts.py forms it
        if key not in seen:
            seen.add(key)
            first[task_id] = reason
    return first


def check_plan(snapshot: Snapshot, pending: Sequence[TaskRequest], result: Plan) -> list[str]:
    """Every broken invariant of ``result``, as sentences; an empty list means a sound plan.

    Checked: each pending task is placed once or has a reason; no agent is over-committed; new
    placements keep driver, schedulable, volume roots, privilege, LIKE, UNLIKE, CLUSTER, UNIQUE
    and MAX_PER; no agent gives one host port to two tasks, nor one it already had in use;
    quotas hold. GROUP_BY's evenness is left to the tests that compare with ``plan_exhaustive``.
    """
    agents = {a.id: a for a in snapshot.agents}
    tasks = {t.id: t for t in pending}
    errors = _coverage(tasks, result)
    new: list[tuple[TaskRequest, AgentSnapshot]] = []
    for p in result.placements:
        task, agent = tasks.get(p.task_id), agents.get(p.agent_id)
        if task is None or agent is None:
            errors.append(f"placement {p} names an unknown task or agent")
        else:
            new.append((task, agent))
            errors += _static_errors(task, agent)
    errors += _capacity_errors(snapshot, new)
    errors += _port_errors(new)
    errors += _count_errors(snapshot, agents, new)
    return errors


def _coverage(tasks: Mapping[str, TaskRequest], result: Plan) -> list[str]:
    placed = Counter(p.task_id for p in result.placements)
    errors = [f"task {i} placed {n} times" for i, n in sorted(placed.items()) if n > 1]
    errors += [f"task {i} placed and unplaced" for i in sorted(set(placed) & set(result.unplaced))]
    missing = set(tasks) - set(placed) - set(result.unplaced)
    errors += [f"task {i} neither placed nor given a reason" for i in sorted(missing)]
    errors += [f"task {i} unplaced without a reason" for i, r in result.unplaced.items() if not r]
    return errors


def _capacity_errors(
    snapshot: Snapshot, new: Sequence[tuple[TaskRequest, AgentSnapshot]]
) -> list[str]:
    load = {a.id: a.used for a in snapshot.agents}
    usage: dict[str, Resources] = {}
    for t in snapshot.placed:
        usage[t.owner] = usage.get(t.owner, NOTHING) + t.resources
    for task, agent in new:
        load[agent.id] += task.resources
        usage[task.owner] = usage.get(task.owner, NOTHING) + task.resources
    errors = [
        f"agent {a.id} over-committed: {load[a.id]} > {a.total}"
        for a in snapshot.agents
        if not load[a.id].fits_in(a.total)
    ]
    owners = {task.owner for task, _ in new}
    for owner, quota in sorted(snapshot.quotas.items()):
        if owner in owners and not usage[owner].fits_in(quota):
            errors.append(f"owner {owner} over quota: {usage[owner]} > {quota}")
    return errors


def _port_errors(new: Sequence[tuple[TaskRequest, AgentSnapshot]]) -> list[str]:
    """Each exact host port once per agent, counting the ports it held before the plan."""
    held: dict[str, set[int]] = {}
    errors = []
    for task, agent in new:
        ports = held.setdefault(agent.id, set(agent.ports_used))
        for port in sorted(set(task.host_ports)):  # listed twice (tcp and udp): needed once
            if port in ports:
                errors.append(f"task {task.id} on {agent.id}: host port {port} already in use")
            ports.add(port)
    return errors


def _static_errors(task: TaskRequest, agent: AgentSnapshot) -> list[str]:
    errors = []
    if not agent.schedulable or task.driver not in agent.drivers:
        errors.append(f"task {task.id} on unschedulable agent or driver missing: {agent.id}")
    if not (
        check_volumes(task.host_paths, agent).fits and check_privilege(task.privileged, agent).fits
    ):
        errors.append(f"task {task.id} on {agent.id}: a volume or privilege not allowed there")
    for c in task.constraints:
        value = field_value(agent, c.field)
        ok = True
        if c.operator == Operator.LIKE:
            ok = value is not None and re.fullmatch(c.value or "", value) is not None
        elif c.operator == Operator.UNLIKE:
            ok = value is None or re.fullmatch(c.value or "", value) is None
        elif c.operator == Operator.CLUSTER and c.value is not None:
            ok = value == c.value
        elif value is None:
            ok = False  # every other operator needs the field
        if not ok:
            errors.append(f"task {task.id} on {agent.id} breaks {c}")
    return errors


def _count_errors(
    snapshot: Snapshot,
    agents: Mapping[str, AgentSnapshot],
    new: Sequence[tuple[TaskRequest, AgentSnapshot]],
) -> list[str]:
    """UNIQUE, MAX_PER and value-less CLUSTER, over each group's final set of tasks."""
    hosts: dict[str, list[AgentSnapshot]] = {}
    for t in snapshot.placed:
        if t.agent_id in agents:
            hosts.setdefault(t.group, []).append(agents[t.agent_id])
    for task, agent in new:
        hosts.setdefault(task.group, []).append(agent)
    tallies: dict[tuple[str, str], Counter[str]] = {}
    errors = []
    for task, agent in new:
        for c in task.constraints:
            mine = field_value(agent, c.field)
            if mine is None:
                continue  # reported by _static_errors
            key = (task.group, c.field)
            if key not in tallies:
                values = (field_value(a, c.field) for a in hosts[task.group])
                tallies[key] = Counter(v for v in values if v is not None)
            tally = tallies[key]
            if (c.operator == Operator.UNIQUE and tally[mine] > 1) or (
                c.operator == Operator.MAX_PER and tally[mine] > int(c.value or 0)
            ):
                errors.append(f"task {task.id}: {tally[mine]} of {task.group} on {c.field}={mine}")
            elif c.operator == Operator.CLUSTER and c.value is None and len(tally) > 1:
                errors.append(f"task {task.id}: {task.group} spans {c.field} {sorted(tally)}")
    return errors
