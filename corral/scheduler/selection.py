"""Selection: pick the best feasible agent for a cohort's next task, or explain why there is none.

Three selectors return the same agent for the same state (the tests hold them to it):

- :func:`select_exhaustive` runs the whole filter chain on every agent and tallies the reasons
  of those that fail. Obviously right, ``O(agents)`` per task: the reference.
- :func:`select_fast` keeps a heap of scored candidates per shape (a :class:`Ranking`) and
  refreshes it lazily: a placement changes the score of one agent only, so a ranking re-scores
  just the agents placed on since it last looked (``PlanState.changed``). Agents that no longer
  fit are dropped for good: within a plan free resources only shrink and the host ports held on
  an agent only grow. Candidates that a group rule (UNIQUE, MAX_PER, CLUSTER) refuses are set
  aside for one call; once a cohort sets aside many, it forks a private ranking and drops them
  for good, as those rules only tighten.
- :func:`select_scan` serves cohorts with a GROUP_BY rule, whose verdicts can loosen again as
  the group's other values fill up: it scans the candidates on each call.

The best agent has the highest score; equal scores go to the lowest rank (the lowest agent id).
When there is none, :func:`explain` gives ``select_exhaustive``'s summary of the refusals, from
a per-shape :class:`Tally` kept current the same lazy way.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from heapq import heapify, heappop, heappush

from corral.scheduler.cohorts import (
    Cohort,
    Ranking,
    Shape,
    Tally,
    check_agent,
    check_counts,
    check_room,
    check_spreads,
    spread_floors,
)
from corral.scheduler.model import Code, Status
from corral.scheduler.scoring import fit_score
from corral.scheduler.state import PlanState

# Candidates a cohort may set aside in one call before it forks a private ranking: forking
# copies the shape's heap (cheap, but memory per cohort), setting aside costs two heap moves.
FORK_AFTER = 8
# How far a ranking may outgrow twice its candidates before its stale entries are swept.
SWEEP_SLACK = 64


def select_fast(cohort: Cohort, state: PlanState) -> int | None:
    """The rank of the best agent for the cohort's next task, or None if none fits."""
    shape = cohort.shape
    if cohort.own is not None:
        _refresh(cohort.own, shape, state)
        return _best_own(cohort.own, cohort, state)
    if shape.ranking is None:
        shape.ranking = _build(shape, state)
    else:
        _refresh(shape.ranking, shape, state)
    rank, set_aside = _best_shared(shape.ranking, cohort, state)
    if set_aside > FORK_AFTER:
        shared = shape.ranking
        cohort.own = Ranking(list(shared.entries), bytearray(shared.alive), shared.synced)
    return rank


def _build(shape: Shape, state: PlanState) -> Ranking:
    request, strategy, ports = shape.task.resources, shape.task.strategy, shape.task.host_ports
    alive = bytearray(len(state.agents))
    entries = []
    for rank in shape.candidates:
        agent = state.agents[rank]
        # Room as check_room says, inline: this loop is hot, most tasks need no host port.
        if request.fits_in(agent.free) and (not ports or agent.ports.isdisjoint(ports)):
            alive[rank] = 1
            score = fit_score(strategy, agent.agent.total, agent.free, request)
            entries.append((-score, rank, agent.version))
    heapify(entries)
    return Ranking(entries, alive, len(state.changed))


def _refresh(ranking: Ranking, shape: Shape, state: PlanState) -> None:
    """Re-score the agents placed on since the ranking last looked.

    Afterwards every alive agent that fits has an entry with its current version and score;
    entries with an older version are stale and skipped when they reach the top.
    """
    changed = state.changed
    if ranking.synced == len(changed):
        return
    # Each agent once, in placement order: bin-packing places on the same agent many times.
    todo = dict.fromkeys(changed[ranking.synced :])
    ranking.synced = len(changed)
    request, strategy, ports = shape.task.resources, shape.task.strategy, shape.task.host_ports
    entries, alive = ranking.entries, ranking.alive
    for rank in todo:
        if not alive[rank]:
            continue
        agent = state.agents[rank]
        if request.fits_in(agent.free) and (not ports or agent.ports.isdisjoint(ports)):
            score = fit_score(strategy, agent.agent.total, agent.free, request)
            heappush(entries, (-score, rank, agent.version))
        else:
            alive[rank] = 0
    if len(entries) > 2 * len(shape.candidates) + SWEEP_SLACK:
        # Stale entries deep in the heap are only dropped when they surface: sweep them now and
        # then so that the heap, and a fork's copy of it, stay the size of the candidates.
        agents = state.agents
        ranking.entries = [e for e in entries if alive[e[1]] and e[2] == agents[e[1]].version]
        heapify(ranking.entries)


def _best_shared(ranking: Ranking, cohort: Cohort, state: PlanState) -> tuple[int | None, int]:
    """The best agent, and how many candidates the cohort's group rules set aside."""
    heap, alive, agents = ranking.entries, ranking.alive, state.agents
    aside = []
    best = None
    while heap:
        _, rank, version = heap[0]
        agent = agents[rank]
        if version != agent.version or not alive[rank]:
            heappop(heap)
        elif not cohort.counted or check_counts(cohort, agent).fits:
            best = rank  # left in the heap: the placement makes the entry stale anyway
            break
        else:
            aside.append(heappop(heap))  # refused by this group only: others may take it
    for entry in aside:
        heappush(heap, entry)
    return best, len(aside)


def _best_own(ranking: Ranking, cohort: Cohort, state: PlanState) -> int | None:
    """The best agent from a cohort's private ranking."""
    heap, alive, agents = ranking.entries, ranking.alive, state.agents
    while heap:
        _, rank, version = heap[0]
        agent = agents[rank]
        if version == agent.version and alive[rank]:
            if check_counts(cohort, agent).fits:
                return rank
            alive[rank] = 0  # counts only grow within a plan: this agent is out for good
        heappop(heap)
    return None


def select_scan(cohort: Cohort, state: PlanState) -> int | None:
    """Like :func:`select_fast`, by scanning every candidate; for cohorts with GROUP_BY."""
    request, strategy, ports = cohort.task.resources, cohort.task.strategy, cohort.task.host_ports
    floors = spread_floors(cohort)
    best: int | None = None
    best_score = -1.0
    for rank in cohort.shape.candidates:
        agent = state.agents[rank]
        if not request.fits_in(agent.free) or (ports and not agent.ports.isdisjoint(ports)):
            continue
        if not (check_counts(cohort, agent).fits and check_spreads(cohort, agent, floors).fits):
            continue
        score = fit_score(strategy, agent.agent.total, agent.free, request)
        if score > best_score:  # strictly: on a tie the lower rank, seen first, stays
            best, best_score = rank, score
    return best


def select_exhaustive(cohort: Cohort, state: PlanState) -> tuple[int | None, Status]:
    """Run every check on every agent: the best rank (or None), and a summary of refusals."""
    request, strategy = cohort.task.resources, cohort.task.strategy
    floors = spread_floors(cohort)
    best: int | None = None
    best_score = -1.0
    refusals: dict[str, int] = {}
    soft = 0
    for agent in state.agents:
        status = check_agent(cohort, agent, floors)
        if not status.fits:
            refusals[status.reason] = refusals.get(status.reason, 0) + 1
            soft += status.code is Code.UNSCHEDULABLE
            continue
        score = fit_score(strategy, agent.agent.total, agent.free, request)
        if score > best_score:
            best, best_score = agent.rank, score
    return best, refused(len(state.agents), refusals, soft)


def explain(cohort: Cohort, state: PlanState) -> Status:
    """Why no agent takes the cohort's next task now: ``select_exhaustive``'s summary, cheaper.

    The shape's tally holds each agent's first refusal among the static and room checks and
    is kept current like a ranking, so a full cluster does not re-check every agent for each of
    a thousand waiting one-task jobs; only the agents it lets through meet the group rules.
    """
    tally = _tally(cohort.shape, state)
    counts, soft = tally.counts, tally.soft
    if cohort.counted or cohort.spreads:
        counts = dict(counts)
        floors = spread_floors(cohort)
        for rank in tally.fitting:
            agent = state.agents[rank]
            status = check_counts(cohort, agent)
            if status.fits:
                status = check_spreads(cohort, agent, floors)
            if not status.fits:
                counts[status.reason] = counts.get(status.reason, 0) + 1
                soft += status.code is Code.UNSCHEDULABLE
    return refused(len(state.agents), counts, soft)


def _tally(shape: Shape, state: PlanState) -> Tally:
    """The shape's tally, built on first use, else updated for the agents placed on since."""
    agents, task = state.agents, shape.task
    tally = shape.tally
    if tally is None:
        statuses = [
            status if not status.fits else check_room(task, agents[rank])
            for rank, status in enumerate(shape.static)
        ]
        tally = shape.tally = Tally(statuses, {}, {}, len(state.changed))
        for rank, status in enumerate(statuses):
            _count(tally, rank, status, +1)
        return tally
    if tally.synced < len(state.changed):
        todo = dict.fromkeys(state.changed[tally.synced :])
        tally.synced = len(state.changed)
        for rank in todo:
            if not shape.static[rank].fits:
                continue  # a static refusal is final
            old, new = tally.statuses[rank], check_room(task, agents[rank])
            if old != new:
                tally.statuses[rank] = new
                _count(tally, rank, old, -1)
                _count(tally, rank, new, +1)
    return tally


def _count(tally: Tally, rank: int, status: Status, step: int) -> None:
    if status.fits:
        if step > 0:
            tally.fitting[rank] = None
        else:
            del tally.fitting[rank]
        return
    if status.code is Code.UNSCHEDULABLE:
        tally.soft += step
    n = tally.counts.get(status.reason, 0) + step
    if n:
        tally.counts[status.reason] = n
    else:
        del tally.counts[status.reason]  # summaries never say "0 insufficient cpus"


def refused(agents: int, refusals: dict[str, int], soft: int) -> Status:
    """The status of a task no agent takes: :func:`summarize`'s reason, and UNRESOLVABLE only
    when every agent refused it for good (``soft`` of them may take it later)."""
    # An empty cluster may yet get agents: waiting helps, so it is UNSCHEDULABLE.
    code = Code.UNSCHEDULABLE if soft or not agents else Code.UNRESOLVABLE
    return Status(code, summarize(agents, refusals))


def revive(shapes: Iterable[Shape], ranks: Sequence[int]) -> None:
    """Let the shapes' rankings take the agents of ``ranks`` again: a rollback freed them.

    A ranking drops an agent for good on the promise that room only shrinks within a plan;
    the gang the permit stage turned down broke it. Only the rankings its members refreshed
    can have dropped one (any other sees the restored room when it next refreshes), and a
    rollback returns the plan exactly to where it was, so every cached failure holds still.
    Revived agents are re-checked on the next refresh: the rollback marked them changed.
    """
    for shape in shapes:
        ranking, candidates = shape.ranking, shape.candidates
        if ranking is None:
            continue
        for rank in ranks:
            i = bisect_left(candidates, rank)
            if i < len(candidates) and candidates[i] == rank:
                ranking.alive[rank] = 1


def summarize(agents: int, refusals: dict[str, int]) -> str:
    """Kubernetes-style: ``0/5 agents fit: 3 insufficient cpus, 2 no driver docker``.

    Each agent is counted once, under the first check it failed; the most common reason first.
    """
    fit = agents - sum(refusals.values())
    if agents == 0:
        return "0/0 agents fit: the cluster has no agents"
    parts = sorted(refusals.items(), key=lambda item: (-item[1], item[0]))
    return f"{fit}/{agents} agents fit: " + ", ".join(f"{n} {reason}" for reason, n in parts)
