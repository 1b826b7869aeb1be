"""The invariants every plan keeps, as sentences: what the property tests and the benchmark
check on whatever they generate (the harness exports :func:`check_plan`)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

from corral.scheduler.feasibility import check_privilege, check_volumes, field_value
from corral.scheduler.model import (
    AgentSnapshot,
    Code,
    Operator,
    Placement,
    Plan,
    Resources,
    Snapshot,
    TaskRequest,
)

NOTHING = Resources()


def check_plan(snapshot: Snapshot, pending: Sequence[TaskRequest], result: Plan) -> list[str]:
    """Every broken invariant of ``result``, as sentences; an empty list means a sound plan.

    Checked: each pending task is placed once or has a reason; no agent is over-committed; new
    placements keep driver, schedulable, volume roots, privilege, LIKE, UNLIKE, CLUSTER, UNIQUE
    and MAX_PER; no agent gives one host port to two tasks, nor one it already had in use;
    each placement gets as many GPU indices as it asked for, all of its agent's, none given
    twice nor already held; quotas hold; a gang is placed whole or not at all; preemptions name
    each victim once, only preemptible placed tasks, not stopping, of another owner and of a
    priority not above the waiting task they make room for, all of one such task on one
    agent, and no agent is over-committed once they (and the tasks stopping) stopped and their
    preemptors are placed. GROUP_BY's evenness is left to the tests that compare
    with ``plan_exhaustive``.
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
    errors += _device_errors(agents, tasks, result.placements)
    errors += _count_errors(snapshot, agents, new)
    errors += _gang_errors(pending, result)
    errors += _preemption_errors(snapshot, tasks, result)
    return errors


def _coverage(tasks: Mapping[str, TaskRequest], result: Plan) -> list[str]:
    placed = Counter(p.task_id for p in result.placements)
    errors = [f"task {i} placed {n} times" for i, n in sorted(placed.items()) if n > 1]
    errors += [f"task {i} placed and unplaced" for i in sorted(set(placed) & set(result.waiting))]
    missing = set(tasks) - set(placed) - set(result.waiting)
    errors += [f"task {i} neither placed nor given a reason" for i in sorted(missing)]
    errors += [
        f"task {i} unplaced without a reason"
        for i, s in result.waiting.items()
        if s.fits or not s.reason
    ]
    return errors


def _capacity_errors(
    snapshot: Snapshot, new: Sequence[tuple[TaskRequest, AgentSnapshot]]
) -> list[str]:
    load = {a.id: a.used for a in snapshot.agents}
    for task, agent in new:
        load[agent.id] += task.resources
    errors = [
        f"agent {a.id} over-committed: {load[a.id]} > {a.total}"
        for a in snapshot.agents
        if not load[a.id].fits_in(a.total)
    ]
    return errors + _quota_errors(snapshot, new)


def _quota_errors(
    snapshot: Snapshot, new: Sequence[tuple[TaskRequest, AgentSnapshot]]
) -> list[str]:
    """No user, nor group of users, given work that takes them over a cap of their quota."""
    held: dict[tuple[str, str], tuple[Resources, int]] = {}

    def count(owner: str, resources: Resources) -> None:
        accounts = [("user", owner)]
        if owner in snapshot.owner_groups:
            accounts.append(("group", snapshot.owner_groups[owner]))
        for key in accounts:
            usage, tasks = held.get(key, (NOTHING, 0))
            held[key] = (usage + resources, tasks + 1)

    for t in snapshot.placed:
        count(t.owner, t.resources)
    for task, _ in new:
        count(task.owner, task.resources)
    given = {("user", task.owner) for task, _ in new}
    given |= {
        ("group", snapshot.owner_groups[t.owner])
        for t, _ in new
        if t.owner in snapshot.owner_groups
    }
    caps = [(("user", o), q) for o, q in snapshot.quotas.items()]
    caps += [(("group", g), q) for g, q in snapshot.group_quotas.items()]
    errors = []
    for key, quota in sorted(caps, key=lambda c: c[0]):
        if key not in given:
            continue  # over quota before the plan (a quota lowered) and given nothing: fine
        usage, tasks = held[key]
        for name, amount, cap in (
            ("millicpus", usage.millicpus, quota.millicpus),
            ("mem", usage.mem, quota.mem),
            ("gpus", usage.gpus, quota.gpus),
            ("tasks", tasks, quota.tasks),
        ):
            if cap is not None and amount > cap:
                errors.append(f"{key[0]} {key[1]} over quota: {amount} {name} > {cap}")
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


def _device_errors(
    agents: Mapping[str, AgentSnapshot],
    tasks: Mapping[str, TaskRequest],
    placements: Sequence[Placement],
) -> list[str]:
    """Each placement gets the GPUs it asked for, of its agent's, held by no other task."""
    held = {a.id: set(a.devices_used) for a in agents.values()}
    errors = []
    for p in placements:
        task, agent = tasks.get(p.task_id), agents.get(p.agent_id)
        if task is None or agent is None:
            continue  # reported by check_plan
        if len(p.devices) != task.resources.gpus:
            errors.append(f"task {task.id} got GPUs {p.devices} for {task.resources.gpus}")
        for index in p.devices:
            if index not in agent.gpu_indices:
                errors.append(f"task {task.id} on {agent.id}: GPU {index} is not the agent's")
            elif index in held[agent.id]:
                errors.append(f"task {task.id} on {agent.id}: GPU {index} already held")
            held[agent.id].add(index)
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


def _gang_errors(pending: Sequence[TaskRequest], result: Plan) -> list[str]:
    placed = {p.task_id for p in result.placements}
    gangs: dict[str, list[bool]] = {}
    for task in pending:
        if task.gang is not None:
            gangs.setdefault(task.gang, []).append(task.id in placed)
    errors = [
        f"gang {gang} placed in part: {sum(members)} of {len(members)}"
        for gang, members in sorted(gangs.items())
        if 0 < sum(members) < len(members)
    ]
    return errors + _node_errors(pending, result)


def _node_errors(pending: Sequence[TaskRequest], result: Plan) -> list[str]:
    """A gang of nodes has each node's members on one agent, and no agent for two nodes."""
    where = {p.task_id: p.agent_id for p in result.placements}
    agents: dict[tuple[str, int], set[str]] = {}
    for task in pending:
        if task.gang is not None and task.gang_node is not None and task.id in where:
            agents.setdefault((task.gang, task.gang_node), set()).add(where[task.id])
    errors = [
        f"gang {gang} node {node} spans agents {sorted(on)}"
        for (gang, node), on in sorted(agents.items())
        if len(on) > 1
    ]
    seen: dict[tuple[str, str], int] = {}
    for (gang, node), on in sorted(agents.items()):
        for agent in on:
            if (gang, agent) in seen:
                errors.append(f"gang {gang} has nodes {seen[gang, agent]} and {node} on {agent}")
            seen[gang, agent] = node
    return errors


def _preemption_errors(
    snapshot: Snapshot, tasks: Mapping[str, TaskRequest], result: Plan
) -> list[str]:
    placed = {t.task_id: t for t in snapshot.placed}
    errors = []
    agent_of: dict[str, str] = {}  # preemptor -> the agent its victims make room on
    for p in result.preemptions:
        victim, by = placed.get(p.task_id), tasks.get(p.by)
        if victim is None or victim.agent_id != p.agent_id:
            errors.append(f"preemption {p} names no task placed on {p.agent_id}")
        elif by is None or p.by not in result.waiting:
            errors.append(f"preemption {p} makes room for no waiting task")
        elif victim.priority > by.priority:
            errors.append(f"preemption {p}: priority {victim.priority} > {by.priority}")
        elif victim.owner == by.owner or not victim.preemptible or victim.stopping:
            errors.append(f"preemption {p}: of its own owner's, not preemptible or stopping")
        if p.status.code is not Code.PREEMPTED or not p.status.reason:
            errors.append(f"preemption {p} without its code and reason")
        if agent_of.setdefault(p.by, p.agent_id) != p.agent_id:
            errors.append(f"preemptions for {p.by} on two agents")
    named = Counter(p.task_id for p in result.preemptions)
    errors += [f"task {i} preempted {n} times" for i, n in sorted(named.items()) if n > 1]
    if not errors:
        errors += _room_errors(snapshot, tasks, result, agent_of)
    return errors


def _room_errors(
    snapshot: Snapshot, tasks: Mapping[str, TaskRequest], result: Plan, agent_of: dict[str, str]
) -> list[str]:
    """No over-commit once the victims stopped and the tasks they made room for are placed."""
    placed = {t.task_id: t for t in snapshot.placed}
    load = {a.id: a.used for a in snapshot.agents}
    for p in result.placements:
        if p.agent_id in load and p.task_id in tasks:  # else reported as unknown
            load[p.agent_id] += tasks[p.task_id].resources
    for q in result.preemptions:
        load[q.agent_id] -= placed[q.task_id].resources
    for task in snapshot.placed:  # stopping already: its room comes back too
        if task.stopping and task.agent_id in load:
            load[task.agent_id] -= task.resources
    for by, agent_id in agent_of.items():
        load[agent_id] += tasks[by].resources
    return [
        f"agent {a.id} over-committed after preemptions: {load[a.id]} > {a.total}"
        for a in snapshot.agents
        if not load[a.id].fits_in(a.total)
    ]
