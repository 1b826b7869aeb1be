"""Preempt: for a task no agent takes, which lower-priority placed tasks would make room.

As the Kubernetes scheduler framework's PostFilter (its default preemption) and Nomad's plan
preemptions. It runs once every pending task has been decided, and only for tasks that wait
with code UNSCHEDULABLE while some placed task has a lower priority: room cannot help an
UNRESOLVABLE task, and equal priorities never evict each other. The task stays unplaced in
this plan; the next plan, once its victims have stopped, places it.

The minimal policy, deterministic:

- **victims**: tasks of ``Snapshot.placed`` of strictly lower priority, on one agent, that no
  earlier preemption of this plan named;
- an agent qualifies when the task passes its static checks and group rules as they stand,
  its host ports are free there, and its free resources plus its victims' fit the task;
- on that agent, the lowest priorities go first (the largest first among equals: fewer go),
  then every victim whose room turns out not to be needed is spared (Kubernetes' reprieve);
- the agent whose victims have the lowest top priority, then are fewest, then have the
  lowest priority sum, then the lowest rank, wins; its room is held for the task, so a later
  preemption cannot count on it.

Left alone: tasks over their owner's quota (room on an agent lifts no quota) and gang members
(a gang needs room for all of them at once); those policies come with the many-users and MPI
work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from corral.scheduler.cohorts import Cohort, check_counts, check_spreads, spread_floors
from corral.scheduler.fairshare import within_owner
from corral.scheduler.model import Code, PlacedTask, Preemption, Resources, Status, TaskRequest
from corral.scheduler.state import PlanState

_Choice = tuple[tuple[bool, int, int, int, int], int, list[PlacedTask]]  # sort key, rank, victims


def preempt(
    state: PlanState,
    placed: Sequence[PlacedTask],
    pending: Sequence[TaskRequest],
    cohorts: Mapping[str, Cohort],
    waiting: Mapping[str, Status],
) -> tuple[Preemption, ...]:
    """The preemptions that make room for the waiting tasks, highest priority first.

    Costs one pass over ``placed`` when no waiting task outranks a placed one, nothing when
    nothing waits or nothing is placed.
    """
    if not placed or not waiting:
        return ()
    lowest = min(task.priority for task in placed)
    preemptors = sorted(
        (
            task
            for task in pending
            if task.priority > lowest
            and task.gang is None
            and task.id in cohorts
            and (why := waiting.get(task.id)) is not None
            and why.code is Code.UNSCHEDULABLE
        ),
        key=within_owner,
    )
    if not preemptors:
        return ()
    pools = _pools(state, placed)
    taken: set[str] = set()
    hopeless: set[tuple[Cohort, int]] = set()  # victims only run out: a failure is final
    preemptions: list[Preemption] = []
    for task in preemptors:
        cohort = cohorts[task.id]
        if (cohort, task.priority) in hopeless or _over_quota(task, state):
            continue
        choice = _best(task, cohort, state, pools, taken)
        if choice is None:
            hopeless.add((cohort, task.priority))
            continue
        _, rank, victims = choice
        agent_id = state.agents[rank].agent.id
        status = Status(Code.PREEMPTED, f"preempted by {task.id} (priority {task.priority})")
        for victim in sorted(victims, key=lambda v: v.task_id):
            state.evict(victim, rank)
            taken.add(victim.task_id)
            preemptions.append(Preemption(victim.task_id, agent_id, task.id, status))
        state.hold(task, rank)
    return tuple(preemptions)


def _pools(state: PlanState, placed: Sequence[PlacedTask]) -> dict[int, list[PlacedTask]]:
    """Placed tasks per agent rank, in the order they are taken as victims."""
    pools: dict[int, list[PlacedTask]] = {}
    for task in placed:
        rank = state.rank_of.get(task.agent_id)
        if rank is not None:  # an agent missing from the snapshot has no room to make
            pools.setdefault(rank, []).append(task)
    for pool in pools.values():
        pool.sort(key=_victim_order)
    return pools


def _victim_order(task: PlacedTask) -> tuple[int, int, int, int, int, str]:
    r = task.resources
    return (task.priority, -r.millicpus, -r.mem, -r.gpus, -r.disk, task.task_id)


def _over_quota(task: TaskRequest, state: PlanState) -> bool:
    return state.quota_refusal(task.owner, task.resources) is not None


def _best(
    task: TaskRequest,
    cohort: Cohort,
    state: PlanState,
    pools: Mapping[int, list[PlacedTask]],
    taken: set[str],
) -> _Choice | None:
    """The agent to make room on and its victims, or None if no agent can be made to fit."""
    floors = spread_floors(cohort)
    ports = task.host_ports
    best: _Choice | None = None
    for rank, static in enumerate(cohort.shape.static):
        agent = state.agents[rank]
        if not static.fits or (ports and not agent.ports.isdisjoint(ports)):
            continue
        if not (check_counts(cohort, agent).fits and check_spreads(cohort, agent, floors).fits):
            continue
        victims = _victims(task, agent.free, pools.get(rank, ()), taken)
        if victims is None:
            continue
        priorities = [v.priority for v in victims]
        # Room that needs no victim (left over by an earlier preemption here) wins outright.
        key = (bool(victims), max(priorities, default=0), len(victims), sum(priorities), rank)
        if best is None or key < best[0]:
            best = (key, rank, victims)
    return best


def _victims(
    task: TaskRequest, free: Resources, pool: Sequence[PlacedTask], taken: set[str]
) -> list[PlacedTask] | None:
    """The fewest, cheapest tasks of ``pool`` whose room makes ``task`` fit, or None."""
    request = task.resources
    room, chosen = free, []
    for victim in pool:
        if request.fits_in(room):
            break
        if victim.priority >= task.priority:
            break  # the pool is sorted by priority: no lower one follows
        if victim.task_id not in taken:
            chosen.append(victim)
            room = room + victim.resources
    if not request.fits_in(room):
        return None
    # Reprieve, as Kubernetes: spare each victim whose room is not needed after all, the
    # highest priority (the last taken) first.
    for victim in reversed(list(chosen)):
        if request.fits_in(room - victim.resources):
            chosen.remove(victim)
            room = room - victim.resources
    return chosen
