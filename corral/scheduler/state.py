"""The scratch state of one plan: what is free, where each group sits, what each owner holds.

Built from the snapshot when ``plan()`` starts and changed only by its methods, so every stage
reads one consistent picture. While tasks are being placed, free resources only shrink, and
counts and the host ports held on each agent only grow; the planner's shortcuts rely on that.
GPUs are handed out by index: a placement takes the lowest free indices of its agent, as many as
the task asks for, and no later placement of the plan gets them.
Two stages break the rule, and say so: a gang the permit stage turns down is rolled back
(:meth:`PlanState.rollback`), and the preempt stage frees its victims' room (:meth:`evict`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from corral.scheduler.feasibility import check_quota, field_value
from corral.scheduler.model import (
    AgentSnapshot,
    Operator,
    PlacedTask,
    Placement,
    Resources,
    Snapshot,
    Status,
    TaskRequest,
)

NOTHING = Resources()


@dataclass(slots=True, eq=False)
class AgentState:
    """One agent during the plan. ``rank`` is its position in id order (the tie-break)."""

    rank: int
    agent: AgentSnapshot
    free: Resources
    ports: frozenset[int]  # fixed host ports held here: the snapshot's, then this plan's tasks'
    devices: tuple[int, ...]  # the GPU indices still free here, ascending
    version: int = 0  # bumped on every placement here: lets cached scores be recognised as stale


def _agent_state(rank: int, agent: AgentSnapshot) -> AgentState:
    """An agent as the plan starts: what is free, the host ports and GPU indices it holds.

    Its free GPUs are never counted above its free indices, so a placement always gets as many
    indices as it asked for, even from a snapshot whose counts and indices disagree.
    """
    indices = agent.gpu_indices
    if len(indices) != agent.total.gpus or len(set(indices)) != len(indices):
        raise ValueError(f"agent {agent.id!r}: GPU indices {indices} for {agent.total.gpus} GPUs")
    devices = tuple(sorted(set(indices) - agent.devices_used))
    free = agent.total - agent.used
    if free.gpus > len(devices):
        free = replace(free, gpus=len(devices))
    return AgentState(rank, agent, free, agent.ports_used, devices)


def tracked_fields(pending: Iterable[TaskRequest]) -> dict[str, tuple[str, ...]]:
    """For each group, the fields whose per-value task counts its constraints need, sorted."""
    fields: dict[str, dict[str, None]] = {}
    for task in pending:
        for c in task.constraints:
            if c.operator in (Operator.UNIQUE, Operator.MAX_PER, Operator.GROUP_BY) or (
                c.operator == Operator.CLUSTER and c.value is None
            ):
                fields.setdefault(task.group, {})[c.field] = None
    # Sorted so that nothing downstream depends on the order tasks arrived in.
    return {group: tuple(sorted(names)) for group, names in sorted(fields.items())}


class PlanState:
    """Mutable state of one plan; see the module docstring."""

    def __init__(self, snapshot: Snapshot, tracked: dict[str, tuple[str, ...]]) -> None:
        ordered = sorted(snapshot.agents, key=lambda a: a.id)
        for before, after in zip(ordered, ordered[1:], strict=False):
            if before.id == after.id:
                raise ValueError(f"agent id {after.id!r} appears twice in the snapshot")
        self.agents = [_agent_state(i, a) for i, a in enumerate(ordered)]
        self.rank_of = {a.id: i for i, a in enumerate(ordered)}
        self.capacity = sum((a.total for a in ordered), NOTHING)
        self.quotas = snapshot.quotas
        self.group_quotas = snapshot.group_quotas
        # Groups are followed only when one has a quota: nothing else reads their holdings.
        self.group_of = snapshot.owner_groups if snapshot.group_quotas else {}
        self.usage: dict[str, Resources] = {}  # owner -> resources held, placed and planned
        self.held: dict[str, int] = {}  # owner -> tasks held, placed and planned
        self.group_usage: dict[str, Resources] = {}  # as usage and held, per group of owners
        self.group_held: dict[str, int] = {}
        self.counts: dict[tuple[str, str], dict[str, int]] = {
            (group, field): {} for group, names in tracked.items() for field in names
        }
        self._tracked = {
            group: tuple((field, self.counts[(group, field)]) for field in names)
            for group, names in tracked.items()
        }
        self.placed_in_group: dict[str, int] = {}  # placements this plan made, per group
        self.changed: list[int] = []  # rank of the agent of each placement, in order
        self.placements: list[Placement] = []
        # While a gang is tried: (task, rank, the agent's host ports and free GPUs before it),
        # to roll back.
        self._journal: list[tuple[TaskRequest, int, frozenset[int], tuple[int, ...]]] | None = None
        for task in snapshot.placed:
            self._account(task.owner, task.resources, +1)
            rank = self.rank_of.get(task.agent_id)
            # A task on an agent missing from the snapshot still holds its owner's share, but
            # its field values are unknown, so it cannot count for constraints.
            if rank is not None:
                self._count(task.group, self.agents[rank].agent)

    def counts_for(self, group: str, field: str) -> dict[str, int]:
        """The live map value -> tasks of ``group`` for a tracked field (shared, not a copy)."""
        return self.counts[(group, field)]

    def place(self, task: TaskRequest, rank: int) -> None:
        """Record that ``task`` goes on the agent of ``rank``; the caller checked feasibility."""
        state = self.agents[rank]
        if self._journal is not None:
            self._journal.append((task, rank, state.ports, state.devices))
        devices = self.hold(task, rank)
        self.placements.append(Placement(task.id, state.agent.id, devices))

    def hold(self, task: TaskRequest, rank: int) -> tuple[int, ...]:
        """Take ``task``'s room on the agent of ``rank`` without placing it (yet); the GPU
        indices it takes there."""
        state = self.agents[rank]
        state.free = state.free - task.resources
        if task.host_ports:
            state.ports = state.ports.union(task.host_ports)
        taken: tuple[int, ...] = ()
        if n := task.resources.gpus:
            taken, state.devices = state.devices[:n], state.devices[n:]
        state.version += 1  # as _changed(rank), inline: this runs once per placement
        self.changed.append(rank)
        self._account(task.owner, task.resources, +1)
        self.placed_in_group[task.group] = self.placed_in_group.get(task.group, 0) + 1
        self._count(task.group, state.agent, +1)
        return taken

    def begin(self) -> None:
        """Start recording placements, so that :meth:`rollback` can take them back."""
        self._journal = []

    def commit(self) -> None:
        """Keep the placements made since :meth:`begin`."""
        self._journal = None

    def rollback(self) -> list[int]:
        """Take back the placements made since :meth:`begin`; the ranks whose room came back.

        Undone newest first, so each agent gets back exactly the host ports and GPUs it had.
        """
        journal, self._journal = self._journal or [], None
        for task, rank, ports, devices in reversed(journal):
            state = self.agents[rank]
            state.free = state.free + task.resources
            state.ports, state.devices = ports, devices
            self._changed(rank)
            self._account(task.owner, task.resources, -1)
            self.placed_in_group[task.group] -= 1
            self._count(task.group, state.agent, -1)
            self.placements.pop()
        return sorted({entry[1] for entry in journal})

    def evict(self, task: PlacedTask, rank: int) -> None:
        """Give back the room of placed task ``task`` on the agent of ``rank`` (a preemption).

        Its host ports stay held: the snapshot does not say which of the agent's they are. Its
        GPU indices come back; free GPUs never count more than the free indices.
        """
        state = self.agents[rank]
        if task.devices:
            state.devices = tuple(sorted({*state.devices, *task.devices}))
        free = state.free + task.resources
        state.free = (
            free if free.gpus <= len(state.devices) else replace(free, gpus=len(state.devices))
        )
        self._changed(rank)
        self._account(task.owner, task.resources, -1)
        self._count(task.group, state.agent, -1)

    def quota_refusal(self, owner: str, need: Resources, count: int = 1) -> Status | None:
        """Why ``owner`` may not be given ``need`` more in ``count`` more tasks: their quota's
        refusal, else their group's; None when both allow it."""
        quota = self.quotas.get(owner)
        if quota is not None:
            held = self.usage.get(owner, NOTHING)
            status = check_quota(f"user {owner}", need, count, held, self.held.get(owner, 0), quota)
            if not status.fits:
                return status
        group = self.group_of.get(owner)
        quota = None if group is None else self.group_quotas.get(group)
        if group is not None and quota is not None:
            held, tasks = self.group_usage.get(group, NOTHING), self.group_held.get(group, 0)
            status = check_quota(f"group {group}", need, count, held, tasks, quota)
            if not status.fits:
                return status
        return None

    def _account(self, owner: str, resources: Resources, step: int) -> None:
        """Count ``resources`` in one task to ``owner`` (step +1) or back (-1), and to their
        group when groups are followed."""
        usage, held = self.usage, self.held
        usage[owner] = (
            usage.get(owner, NOTHING) + resources if step > 0 else usage[owner] - resources
        )
        held[owner] = held.get(owner, 0) + step
        group = self.group_of.get(owner) if self.group_of else None
        if group is not None:
            gusage = self.group_usage
            gusage[group] = (
                gusage.get(group, NOTHING) + resources if step > 0 else gusage[group] - resources
            )
            self.group_held[group] = self.group_held.get(group, 0) + step

    def _changed(self, rank: int) -> None:
        self.agents[rank].version += 1
        self.changed.append(rank)

    def _count(self, group: str, agent: AgentSnapshot, step: int = +1) -> None:
        for field, counts in self._tracked.get(group, ()):
            value = field_value(agent, field)
            if value is None:
                continue
            n = counts.get(value, 0) + step
            if n:
                counts[value] = n
            else:
                del counts[value]  # rules read "a value with a task": none left, no key
