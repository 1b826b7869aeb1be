"""Shapes and cohorts: pending work prepared once per plan, not once per task.

- A **shape** is what placement depends on besides the group: resources, driver, constraints,
  strategy, host paths, privilege and exact host ports. Tasks of one shape have the same
  statically feasible agents and the same score on each agent, whatever job they belong to, so
  constraints are compiled, static checks run and candidates ranked once per shape (many
  one-task jobs share a few shapes).
- A **cohort** is the tasks of one group, owner and gang with one shape: the instances of a
  service, the tasks of a job array. Only id, priority and order tell them apart, and those
  matter for ordering, not placement. Group constraints (UNIQUE, MAX_PER, CLUSTER, GROUP_BY)
  and quotas are checked per cohort.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from corral.scheduler.feasibility import (
    InvalidConstraint,
    Rule,
    check_counted_rule,
    check_group_by,
    check_host_ports,
    check_resources,
    check_static,
    compile_rules,
    field_value,
    group_by_floor,
    invalid_host_ports,
)
from corral.scheduler.model import (
    FITS,
    Code,
    Constraint,
    Operator,
    Resources,
    Status,
    Strategy,
    TaskRequest,
)
from corral.scheduler.state import AgentState, PlanState

ShapeKey = tuple[
    Resources, str, tuple[Constraint, ...], Strategy, tuple[str, ...], bool, tuple[int, ...]
]
# What the static checks read of a task: driver, constraints, host paths, privileged.
StaticKey = tuple[str, tuple[Constraint, ...], tuple[str, ...], bool]
CohortKey = tuple[str, str, str | None, ShapeKey]  # group, owner, gang, shape


@dataclass(slots=True, eq=False)
class Ranking:
    """Scored candidates in a heap, refreshed lazily (see selection.py)."""

    entries: list[tuple[float, int, int]]  # (-score, rank, agent version when scored)
    alive: bytearray  # per rank: 0 once the agent can never take this work again in the plan
    synced: int  # how much of PlanState.changed the entries reflect


@dataclass(slots=True, eq=False)
class Tally:
    """Why each agent refuses a shape, kept current lazily like a ranking (see selection.py)."""

    statuses: list[Status]  # per rank: the first static or room check it fails, or FITS
    counts: dict[str, int]  # reason -> agents refusing for it
    fitting: dict[int, None]  # ranks whose status is FITS (a dict: ordered, unlike a set)
    synced: int  # how much of PlanState.changed the statuses reflect
    soft: int = 0  # agents refusing with UNSCHEDULABLE: the task may fit there later


@dataclass(slots=True, eq=False)
class Shape:
    """Work that places alike, whatever its group; see the module docstring."""

    task: TaskRequest  # the first task of this shape: gives resources, strategy, host ports…
    rules: tuple[Rule, ...]
    static: list[Status]  # per rank: the static checks' answer (shared by like shapes)
    candidates: list[int]  # ranks of the statically feasible agents, ascending
    ranking: Ranking | None = None  # built on first use
    tally: Tally | None = None  # built on the first failure to explain
    _values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def values(self, state: PlanState, name: str) -> tuple[str, ...]:
        """The distinct values of a field over the candidates, sorted."""
        found = self._values.get(name)
        if found is None:
            values = {field_value(state.agents[r].agent, name) for r in self.candidates}
            # Sorted: a set of strings iterates in an order that changes with hash randomization.
            found = self._values[name] = tuple(sorted(v for v in values if v is not None))
        return found


@dataclass(slots=True, eq=False)
class Cohort:
    """The pending tasks of one group, owner and gang that share a shape."""

    task: TaskRequest  # the first member; the others differ only in id, priority and order
    shape: Shape
    # UNIQUE, MAX_PER and value-less CLUSTER rules, each with the live counts of its field.
    counted: tuple[tuple[Rule, dict[str, int]], ...]
    # GROUP_BY rules, each with the live counts and the values of the candidates.
    spreads: tuple[tuple[Rule, dict[str, int], tuple[str, ...]], ...]
    remaining: int = 0  # members not decided yet
    own: Ranking | None = None  # a private ranking, once group rules block many candidates
    failure: Status | None = None  # why the last member could not be placed
    failed_at: int = 0  # the group's placement count when that happened

    @property
    def monotone(self) -> bool:
        """True when a failure is final for the rest of the plan.

        Free resources only shrink and counts only grow within a plan, so every check but
        GROUP_BY only gets stricter: once a cohort's task fails, its later tasks fail too.
        """
        return not self.spreads


class Shaped(Protocol):
    """What a shape is read from: a ``TaskRequest``, or the master's record of a waiting task
    (which files tasks by cohort before it makes their requests)."""

    @property
    def resources(self) -> Resources: ...
    @property
    def driver(self) -> str: ...
    @property
    def constraints(self) -> tuple[Constraint, ...]: ...
    @property
    def strategy(self) -> Strategy: ...
    @property
    def host_paths(self) -> tuple[str, ...]: ...
    @property
    def privileged(self) -> bool: ...
    @property
    def host_ports(self) -> tuple[int, ...]: ...


def shape_key(task: Shaped) -> ShapeKey:
    """What makes two tasks place alike, apart from their group."""
    return (
        task.resources,
        task.driver,
        task.constraints,
        Strategy(task.strategy),
        task.host_paths,
        task.privileged,
        task.host_ports,
    )


def cohort_key(task: TaskRequest) -> CohortKey:
    """The cohort a pending task belongs to: its group, owner, gang and shape."""
    return (task.group, task.owner, task.gang, shape_key(task))


def build_cohorts(
    pending: Sequence[TaskRequest], state: PlanState, placed_ids: dict[str, str]
) -> tuple[dict[str, Cohort], dict[str, Status]]:
    """Sort pending tasks into cohorts; reject those that can never be placed, with a reason.

    Returns the cohort of each accepted task id, and a status per rejected task id (always
    UNRESOLVABLE: waiting will not mend a malformed request).
    ``placed_ids`` maps the ids of tasks already placed to their agent. Raises ``ValueError``
    when a task id is pending twice: that is a bug of the caller, not a reason to wait.
    """
    shapes = _Shapes(state)
    by_key: dict[CohortKey, Cohort | Status] = {}
    cohorts: dict[str, Cohort] = {}
    rejected: dict[str, Status] = {}
    for task in pending:
        if task.id in cohorts or task.id in rejected:
            raise ValueError(f"task id {task.id!r} is pending twice")
        if task.id in placed_ids:
            rejected[task.id] = Status(
                Code.UNRESOLVABLE, f"already placed on agent {placed_ids[task.id]}"
            )
            continue
        key = cohort_key(task)
        cohort = by_key.get(key)
        if cohort is None:
            shape = shapes.get(task)
            cohort = by_key[key] = (
                shape if isinstance(shape, Status) else _cohort(task, shape, state)
            )
        if isinstance(cohort, Status):
            rejected[task.id] = cohort
        else:
            cohort.remaining += 1
            cohorts[task.id] = cohort
    return cohorts, rejected


class _Shapes:
    """Builds each shape once; caches what shapes have in common."""

    def __init__(self, state: PlanState) -> None:
        self._state = state
        # Built before any placement: what each agent has free when the plan starts.
        self._start_free = [a.free for a in state.agents]
        self._shapes: dict[ShapeKey, Shape | Status] = {}
        self._static: dict[StaticKey, list[Status]] = {}

    def get(self, task: TaskRequest) -> Shape | Status:
        """The shape of ``task``, or why no task of that shape can ever be placed."""
        key = shape_key(task)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = self._new(task)
        return shape

    def _new(self, task: TaskRequest) -> Shape | Status:
        request = task.resources
        if min(request.millicpus, request.mem, request.disk, request.gpus) < 0:
            return Status(Code.UNRESOLVABLE, "invalid request: negative resources")
        ports = task.host_ports
        if ports and (invalid := invalid_host_ports(ports)) is not None:
            return Status(Code.UNRESOLVABLE, invalid)
        try:
            rules = compile_rules(task.constraints)
        except InvalidConstraint as e:
            return Status(Code.UNRESOLVABLE, str(e))
        static_key = (task.driver, task.constraints, task.host_paths, task.privileged)
        static = self._static.get(static_key)
        if static is None:
            static = self._static[static_key] = [
                check_static(task, rules, a.agent) for a in self._state.agents
            ]
        # Statically feasible: passes the static checks, and fits what was free at the start
        # (resources and host ports: within a plan, neither comes back).
        start_free = self._start_free
        candidates = [
            rank
            for rank, status in enumerate(static)
            if status.fits and request.fits_in(start_free[rank])
        ]
        if ports:
            agents = self._state.agents
            candidates = [r for r in candidates if agents[r].agent.ports_used.isdisjoint(ports)]
        return Shape(task, rules, static, candidates)


def _cohort(task: TaskRequest, shape: Shape, state: PlanState) -> Cohort:
    counted = tuple(
        (rule, state.counts_for(task.group, rule.field))
        for rule in shape.rules
        if rule.counted and rule.operator is not Operator.GROUP_BY
    )
    spreads = tuple(
        (rule, state.counts_for(task.group, rule.field), shape.values(state, rule.field))
        for rule in shape.rules
        if rule.operator is Operator.GROUP_BY
    )
    return Cohort(task, shape, counted, spreads)


def check_counts(cohort: Cohort, agent: AgentState) -> Status:
    """UNIQUE, MAX_PER and value-less CLUSTER for one agent, against the live counts."""
    for rule, counts in cohort.counted:
        value = field_value(agent.agent, rule.field)
        status = rule.missing if value is None else check_counted_rule(rule, value, counts)
        if not status.fits:
            return status
    return FITS


def check_spreads(cohort: Cohort, agent: AgentState, floors: Sequence[int]) -> Status:
    """GROUP_BY for one agent; ``floors`` are :func:`spread_floors` of the cohort, now."""
    for (rule, counts, _), floor in zip(cohort.spreads, floors, strict=True):
        value = field_value(agent.agent, rule.field)
        status = rule.missing if value is None else check_group_by(rule, value, counts, floor)
        if not status.fits:
            return status
    return FITS


def spread_floors(cohort: Cohort) -> list[int]:
    """For each GROUP_BY rule, the fewest tasks of the group on any candidate value, now."""
    return [group_by_floor(values, counts) for _, counts, values in cohort.spreads]


def check_room(task: TaskRequest, agent: AgentState) -> Status:
    """Room for the task on the agent now: its exact host ports are free, then its resources.

    Ports first, as Kubernetes' NodePorts before NodeResourcesFit: the more specific refusal.
    """
    if task.host_ports:  # most tasks need none: skip the call
        status = check_host_ports(task.host_ports, agent.ports)
        if not status.fits:
            return status
    return check_resources(task.resources, agent.free)


def check_agent(cohort: Cohort, agent: AgentState, floors: Sequence[int]) -> Status:
    """The whole filter chain for one agent, in the order that reasons are reported.

    Static checks first (they explain the most durable refusals), then room (host ports,
    resources), then the checks that depend on where the group's other tasks went.
    """
    status = check_static(cohort.task, cohort.shape.rules, agent.agent)
    if status.fits:
        status = check_room(cohort.task, agent)
    if status.fits:
        status = check_counts(cohort, agent)
    if status.fits:
        status = check_spreads(cohort, agent, floors)
    return status
