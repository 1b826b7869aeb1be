"""Preempt: a user below their fair share, whose task has waited too long and fits nowhere,
evicts tasks of users over their share to make room for it.

As the Kubernetes scheduler framework's PostFilter (its default preemption) and Nomad's plan
preemptions, with Slurm's reason for it: fair share. It runs once every pending task has been
decided. The task stays unplaced in this plan; the next plan, once its victims have stopped,
places it (fair share orders its owner first: they are the furthest below their share).

**Shares** are the fair-share stage's (``fairshare.py``): an owner's weighted dominant share of
what they hold now plus their decayed past. Each owner with placed or waiting work is entitled
to ``1 / Σ weights`` of it (``weight / Σ weights`` of the cluster): below that they are **below
share**, above it **over share**.

The policy, deterministic:

- **preemptors**: waiting tasks, not of a gang, whose code is UNSCHEDULABLE (room cannot help
  an UNRESOLVABLE one), that have waited ``Snapshot.preempt_after`` seconds or more, of an
  owner below share (checked again before each: the room held counts), not over quota; the
  owner lowest in share first, then each owner's own order;
- **victims**: placed tasks that are preemptible (batch tasks; a service's only if marked so;
  never a gang's rank), of another owner who is over share, of a priority not above the
  preemptor's, that no earlier preemption of this plan named — and only while their owner,
  without them, still holds at least the share the preemptor's owner will hold with the task:
  every preemption brings the two closer, so two users never evict each other in turn;
- **room being made**: tasks already asked to stop (``PlacedTask.stopping``) count as free
  room, taken first and named by no preemption: a preemption asked in an earlier plan is not
  asked again while its victims stop;
- an agent qualifies when the task passes its static checks and group rules as they stand,
  its host ports are free there, and its free room plus its victims' fit the task; on it, the
  lowest priorities go first (the largest first among equals: fewer go), then every victim
  whose room turns out not to be needed is spared (Kubernetes' reprieve);
- the agent whose victims have the lowest top priority, then are fewest, then have the lowest
  priority sum, then the lowest rank, wins; its room is held for the task, so a later
  preemption cannot count on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from corral.scheduler.cohorts import Cohort, check_counts, check_spreads, spread_floors
from corral.scheduler.fairshare import dominant_share, within_owner
from corral.scheduler.model import (
    Code,
    PlacedTask,
    Preemption,
    Resources,
    Snapshot,
    Status,
    TaskRequest,
)
from corral.scheduler.state import NOTHING, PlanState

_Choice = tuple[tuple[bool, int, int, int, int], int, list[PlacedTask]]  # sort key, rank, victims


@dataclass(frozen=True, slots=True)
class _Pools:
    """The placed tasks per agent rank: those that may be victims, in the order they are
    taken, and those stopping already."""

    victims: dict[int, list[PlacedTask]]
    stopping: dict[int, list[PlacedTask]]
    lowest: int  # the lowest priority of a placed task: no victim's is lower


class Shares:
    """Owners' weighted dominant shares as fair share counts them, live from the plan's
    state, and the share each owner is entitled to."""

    def __init__(self, state: PlanState, snapshot: Snapshot, owners: set[str]) -> None:
        self.state, self.weights, self.past = state, snapshot.weights, snapshot.past
        total = sum(self.weights.get(owner, 1.0) for owner in owners)
        self.fair = 1.0 / total if total > 0 else 0.0  # in weighted units, as share() counts

    def share(self, owner: str, change: Resources = NOTHING, sign: int = 1) -> float:
        """``owner``'s share now, with ``change`` added (``sign`` 1) or taken away (-1)."""
        held = self.state.usage.get(owner, NOTHING) + self.past.get(owner, NOTHING)
        held = held + change if sign > 0 else held - change
        return dominant_share(held, self.state.capacity, self.weights.get(owner, 1.0))

    def below(self, owner: str) -> bool:
        """Whether ``owner`` holds less than their share."""
        return self.share(owner) < self.fair

    def over(self, owner: str) -> bool:
        """Whether ``owner`` holds more than their share."""
        return self.share(owner) > self.fair


def preempt(
    state: PlanState,
    snapshot: Snapshot,
    pending: Sequence[TaskRequest],
    cohorts: Mapping[str, Cohort],
    waiting: Mapping[str, Status],
) -> tuple[Preemption, ...]:
    """The preemptions that make room for waiting tasks of owners below their share.

    Costs one pass over the pending tasks when none may preempt, nothing when nothing waits or
    nothing is placed.
    """
    if not snapshot.placed or not waiting:
        return ()
    owners = {t.owner for t in snapshot.placed} | {t.owner for t in pending}
    shares = Shares(state, snapshot, owners)
    late = snapshot.now - snapshot.preempt_after
    starved = {owner: shares.share(owner) for owner in owners if shares.below(owner)}
    preemptors = sorted(
        (
            task
            for task in pending
            if task.owner in starved
            and task.gang is None
            and task.waiting_since <= late
            and task.id in cohorts
            and (why := waiting.get(task.id)) is not None
            and why.code is Code.UNSCHEDULABLE
        ),
        key=lambda t: (starved[t.owner], t.owner, *within_owner(t)),
    )
    if not preemptors:
        return ()
    pools = _pools(state, snapshot.placed)
    taken: set[str] = set()
    hopeless: set[tuple[Cohort, int]] = set()  # victims only run out: a failure is final
    preemptions: list[Preemption] = []
    for task in preemptors:
        cohort = cohorts[task.id]
        if (cohort, task.priority) in hopeless or not shares.below(task.owner):
            continue
        if state.quota_refusal(task.owner, task.resources) is not None:
            continue  # room on an agent lifts no quota
        choice = _best(task, cohort, state, shares, pools, taken)
        if choice is None:
            hopeless.add((cohort, task.priority))
            continue
        _, rank, victims = choice
        agent_id = state.agents[rank].agent.id
        waited = snapshot.now - task.waiting_since
        status = Status(
            Code.PREEMPTED,
            f"preempted by task {task.id} of user {task.owner}: "
            f"{task.owner} below share, waited {waited:.0f} s",
        )
        for gone in pools.stopping.pop(rank, ()):
            state.evict(gone, rank)  # its room is on its way: held for this task
        for victim in sorted(victims, key=lambda v: v.task_id):
            state.evict(victim, rank)
            taken.add(victim.task_id)
            preemptions.append(Preemption(victim.task_id, agent_id, task.id, status))
        state.hold(task, rank)
    return tuple(preemptions)


def _pools(state: PlanState, placed: Sequence[PlacedTask]) -> _Pools:
    """Placed tasks per agent rank: possible victims in the order they are taken as victims,
    and the stopping ones."""
    pools = _Pools({}, {}, min((t.priority for t in placed), default=0))
    for task in placed:
        rank = state.rank_of.get(task.agent_id)
        if rank is None:  # an agent missing from the snapshot has no room to make
            continue
        if task.stopping:
            pools.stopping.setdefault(rank, []).append(task)
        elif task.preemptible:
            pools.victims.setdefault(rank, []).append(task)
    for pool in pools.victims.values():
        pool.sort(key=_victim_order)
    return pools


def _victim_order(task: PlacedTask) -> tuple[int, int, int, int, int, str]:
    r = task.resources
    return (task.priority, -r.millicpus, -r.mem, -r.gpus, -r.disk, task.task_id)


def _best(
    task: TaskRequest,
    cohort: Cohort,
    state: PlanState,
    shares: Shares,
    pools: _Pools,
    taken: set[str],
) -> _Choice | None:
    """The agent to make room on and its victims, or None if no agent can be made to fit."""
    floors = spread_floors(cohort)
    ports = task.host_ports
    ranks = []
    for rank, static in enumerate(cohort.shape.static):
        agent = state.agents[rank]
        if not static.fits or (ports and not agent.ports.isdisjoint(ports)):
            continue
        if not (check_counts(cohort, agent).fits and check_spreads(cohort, agent, floors).fits):
            continue
        # Room that needs no victim (left over by an earlier preemption here, or being made
        # by tasks stopping) wins outright, the lowest rank first.
        stopping = pools.stopping.get(rank, ())
        if task.resources.fits_in(sum((t.resources for t in stopping), agent.free)):
            return (False, 0, 0, 0, rank), rank, []
        ranks.append(rank)
    # The share the task's owner will hold with it: no victim's owner may drop below it.
    floor = shares.share(task.owner, task.resources)
    over: dict[str, bool] = {}  # owners over share, asked once for this task
    unbeatable = (True, pools.lowest, 1, pools.lowest)  # one victim of the lowest priority
    best: _Choice | None = None
    for rank in ranks:
        free = sum((t.resources for t in pools.stopping.get(rank, ())), state.agents[rank].free)
        victims = _victims(task, free, pools.victims.get(rank, ()), taken, shares, floor, over)
        if victims is None:
            continue
        priorities = [v.priority for v in victims]
        key = (True, max(priorities), len(victims), sum(priorities), rank)
        if best is None or key < best[0]:
            best = (key, rank, victims)
            if key[:4] == unbeatable:
                break  # a later agent could only tie, and ties go to the lowest rank
    return best


def _victims(
    task: TaskRequest,
    free: Resources,
    pool: Sequence[PlacedTask],
    taken: set[str],
    shares: Shares,
    floor: float,
    over: dict[str, bool],
) -> list[PlacedTask] | None:
    """The fewest, cheapest tasks of ``pool`` whose room makes ``task`` fit, or None."""
    request = task.resources
    room, chosen = free, []
    lost: dict[str, Resources] = {}  # what each victim's owner gives up here
    for victim in pool:
        if request.fits_in(room):
            break
        if victim.priority > task.priority:
            break  # the pool is sorted by priority: no lower one follows
        owner = victim.owner
        if victim.task_id in taken or owner == task.owner:
            continue
        if (is_over := over.get(owner)) is None:
            is_over = over[owner] = shares.over(owner)
        if not is_over:
            continue
        gives = lost.get(owner, NOTHING) + victim.resources
        if shares.share(owner, gives, -1) < floor:
            continue  # its owner would end up below the preemptor's: they would swap back
        lost[owner] = gives
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
