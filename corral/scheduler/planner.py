"""The wiring: ``plan(snapshot, pending) -> Plan``, composing the stages in a fixed order.

1. cohorts    — sort tasks into shapes and cohorts; compile constraints; find candidates once.
2. fair share — take tasks one at a time, lowest weighted dominant share first.
3. quota      — refuse a task that would take its owner over quota (before looking at agents:
                no agent can fix that).
4. selection  — feasible agents ranked by score, ties by agent id; the best one wins.
5. state      — record the placement, so the next decision sees it.

Tasks that cannot be placed get a reason; nothing is retried within a plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from corral.scheduler.cohorts import Cohort, build_cohorts
from corral.scheduler.fairshare import FairQueue
from corral.scheduler.feasibility import check_quota
from corral.scheduler.model import Plan, Snapshot, TaskRequest
from corral.scheduler.selection import explain, select_exhaustive, select_fast, select_scan
from corral.scheduler.state import NOTHING, PlanState, tracked_fields

_Decide = Callable[[TaskRequest, Cohort, PlanState], str | None]


def plan(snapshot: Snapshot, pending: Sequence[TaskRequest]) -> Plan:
    """Place as many ``pending`` tasks as fit; say why each of the others must wait.

    Pure and deterministic: the same snapshot and pending tasks (in any order) give the same
    plan. Raises ``ValueError`` for a malformed input (an agent id or pending task id given
    twice, a weight that is not positive); a bad task only gets a reason.
    """
    return _run(snapshot, pending, _decide_fast)


def plan_exhaustive(snapshot: Snapshot, pending: Sequence[TaskRequest]) -> Plan:
    """The same plan as :func:`plan`, checking every agent for every task.

    The reference that ``plan`` is tested against, and the benchmark's baseline; too slow for
    a real cluster (``O(tasks * agents)``). Reasons may differ in their counts only: ``plan``
    gives identical tasks the reason found for the first of them.
    """
    return _run(snapshot, pending, _decide_exhaustive)


def _run(snapshot: Snapshot, pending: Sequence[TaskRequest], decide: _Decide) -> Plan:
    state = PlanState(snapshot, tracked_fields(pending))
    placed_ids = {task.task_id: task.agent_id for task in snapshot.placed}
    cohorts, unplaced = build_cohorts(pending, state, placed_ids)
    queue = FairQueue(
        (task for task in pending if task.id in cohorts),
        usage=state.usage,
        capacity=state.capacity,
        weights=snapshot.weights,
    )
    for task in queue:
        reason = decide(task, cohorts[task.id], state)
        if reason is not None:
            unplaced[task.id] = reason
    return Plan(placements=tuple(state.placements), unplaced=unplaced)


def _quota_refusal(task: TaskRequest, state: PlanState) -> str | None:
    quota = state.quotas.get(task.owner)
    if quota is None:
        return None
    status = check_quota(task.owner, task.resources, state.usage.get(task.owner, NOTHING), quota)
    return None if status.fits else status.reason


def _decide_fast(task: TaskRequest, cohort: Cohort, state: PlanState) -> str | None:
    """Place ``task`` and return None, or return why it cannot be placed."""
    reason = _place_or_explain(task, cohort, state)
    cohort.remaining -= 1
    if cohort.remaining == 0:
        cohort.own = None  # that was the last member: free the private ranking's memory
    return reason


def _place_or_explain(task: TaskRequest, cohort: Cohort, state: PlanState) -> str | None:
    group_placed = state.placed_in_group.get(task.group, 0)
    if cohort.failure is not None and (cohort.monotone or cohort.failed_at == group_placed):
        # Nothing that could help this cohort has happened since its last task failed.
        return cohort.failure
    reason = _quota_refusal(task, state)
    if reason is None:
        rank = select_fast(cohort, state) if cohort.monotone else select_scan(cohort, state)
        if rank is not None:
            state.place(task, rank)
            return None
        reason = explain(cohort, state)
    cohort.failure, cohort.failed_at = reason, group_placed
    return reason


def _decide_exhaustive(task: TaskRequest, cohort: Cohort, state: PlanState) -> str | None:
    reason = _quota_refusal(task, state)
    if reason is not None:
        return reason
    rank, reason = select_exhaustive(cohort, state)
    if rank is None:
        return reason
    state.place(task, rank)
    return None
