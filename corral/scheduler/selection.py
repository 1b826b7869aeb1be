"""Selection: pick the best feasible agent for a cohort's next task, or explain why there is none.

Three selectors return the same agent for the same state (the tests hold them to it):

- :func:`select_exhaustive` runs the whole filter chain on every agent and tallies the reasons
  of those that fail. Obviously right, ``O(agents)`` per task; also used to explain a failure.
- :func:`select_fast` keeps one heap of scored candidates per cohort and updates it lazily: a
  placement changes the score of one agent only, so the heap re-scores just the agents placed on
  since it last looked (``PlanState.changed``). Agents that no longer fit are dropped for good,
  since within a plan resources only shrink and UNIQUE/MAX_PER/CLUSTER only tighten.
- :func:`select_scan` serves cohorts with a GROUP_BY rule, whose verdicts can loosen again as
  the group's other values fill up: it scans the cohort's candidates on each call.

The best agent has the highest score; equal scores go to the lowest rank (the lowest agent id).
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush

from corral.scheduler.cohorts import (
    Cohort,
    check_agent,
    check_counts,
    check_spreads,
    spread_floors,
)
from corral.scheduler.scoring import fit_score
from corral.scheduler.state import PlanState


def select_fast(cohort: Cohort, state: PlanState) -> int | None:
    """The rank of the best agent for the cohort's next task, or None if none fits.

    Heap entries are ``(-score, rank, version)``; an entry is current while the agent's version
    is unchanged. Every alive candidate that fits has a current entry once :func:`_refresh` ran.
    """
    _refresh(cohort, state)
    heap, alive, agents = cohort.heap, cohort.alive, state.agents
    while heap:
        _, rank, version = heap[0]
        agent = agents[rank]
        if version == agent.version and alive[rank]:
            if check_counts(cohort, agent).fits:
                return rank  # left in the heap: the placement makes the entry stale anyway
            alive[rank] = 0  # counts only grow within a plan: this agent is out for good
        heappop(heap)
    return None


def _refresh(cohort: Cohort, state: PlanState) -> None:
    """Build the cohort's heap on first use, else re-score the agents placed on since."""
    request, strategy = cohort.task.resources, cohort.task.strategy
    if cohort.synced < 0:
        cohort.alive = bytearray(len(state.agents))
        for rank in cohort.candidates:
            cohort.alive[rank] = 1
        todo = cohort.candidates
    else:
        todo = state.changed[cohort.synced :]
    cohort.synced = len(state.changed)
    heap, alive = cohort.heap, cohort.alive
    entries = []
    for rank in todo:
        if not alive[rank]:
            continue
        agent = state.agents[rank]
        free = agent.free
        if request.fits_in(free):
            score = fit_score(strategy, agent.agent.total, free, request)
            entries.append((-score, rank, agent.version))
        else:
            alive[rank] = 0  # free resources only shrink within a plan
    if len(entries) > len(heap):
        heap.extend(entries)
        heapify(heap)
    else:
        for entry in entries:
            heappush(heap, entry)


def select_scan(cohort: Cohort, state: PlanState) -> int | None:
    """Like :func:`select_fast`, by scanning every candidate; for cohorts with GROUP_BY."""
    request, strategy = cohort.task.resources, cohort.task.strategy
    floors = spread_floors(cohort)
    best: int | None = None
    best_score = -1.0
    for rank in cohort.candidates:
        agent = state.agents[rank]
        if not request.fits_in(agent.free):
            continue
        if not (check_counts(cohort, agent).fits and check_spreads(cohort, agent, floors).fits):
            continue
        score = fit_score(strategy, agent.agent.total, agent.free, request)
        if score > best_score:  # strictly: on a tie the lower rank, seen first, stays
            best, best_score = rank, score
    return best


def select_exhaustive(cohort: Cohort, state: PlanState) -> tuple[int | None, str]:
    """Run every check on every agent: the best rank (or None), and a summary of refusals."""
    request, strategy = cohort.task.resources, cohort.task.strategy
    floors = spread_floors(cohort)
    best: int | None = None
    best_score = -1.0
    refusals: dict[str, int] = {}
    for agent in state.agents:
        status = check_agent(cohort, agent, floors)
        if not status.fits:
            refusals[status.reason] = refusals.get(status.reason, 0) + 1
            continue
        score = fit_score(strategy, agent.agent.total, agent.free, request)
        if score > best_score:
            best, best_score = agent.rank, score
    return best, summarize(len(state.agents), refusals)


def summarize(agents: int, refusals: dict[str, int]) -> str:
    """Kubernetes-style: ``0/5 agents fit: 3 insufficient cpus, 2 no driver docker``.

    Each agent is counted once, under the first check it failed; the most common reason first.
    """
    fit = agents - sum(refusals.values())
    if agents == 0:
        return "0/0 agents fit: the cluster has no agents"
    parts = sorted(refusals.items(), key=lambda item: (-item[1], item[0]))
    return f"{fit}/{agents} agents fit: " + ", ".join(f"{n} {reason}" for reason, n in parts)
