"""The wiring: ``plan(snapshot, pending) -> Plan``, composing the stages in a fixed order.

1. cohorts    — sort tasks into shapes and cohorts; compile constraints; find candidates once.
2. fair share — take tasks one at a time, lowest weighted dominant share first.
3. quota      — refuse a task that would take its owner over quota (before looking at agents:
                no agent can fix that).
4. selection  — feasible agents ranked by score, ties by agent id; the best one wins.
5. state      — record the placement, so the next decision sees it.
6. permit     — a gang's members are tried together when the first of them comes up; all
                placed, or all rolled back so that their room goes to the tasks decided after.
                A gang of nodes takes distinct agents, each with room for a whole node.
7. preempt    — once every task is decided, if the snapshot allows preemption: for each
                UNSCHEDULABLE task of an owner below their fair share that waited long
                enough, the placed tasks of owners over theirs whose room would let it in.

Tasks that cannot be placed get a status; nothing is retried within a plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from corral.scheduler.cohorts import Cohort, build_cohorts
from corral.scheduler.fairshare import FairQueue
from corral.scheduler.model import FITS, Code, Plan, Snapshot, Status, TaskRequest
from corral.scheduler.permit import gangs_of, incomplete, nodes_status, permit, place_nodes
from corral.scheduler.preempt import preempt
from corral.scheduler.selection import (
    explain,
    revive,
    select_exhaustive,
    select_fast,
    select_scan,
)
from corral.scheduler.state import PlanState, tracked_fields

_Decide = Callable[[TaskRequest, Cohort, PlanState], Status | None]
_NOT_YET = Status(Code.UNSCHEDULABLE)  # a gang of nodes did not fit: explained after rollback


def plan(snapshot: Snapshot, pending: Sequence[TaskRequest]) -> Plan:
    """Place as many ``pending`` tasks as fit; say why each of the others must wait.

    Pure and deterministic: the same snapshot and pending tasks (in any order) give the same
    plan. Raises ``ValueError`` for a malformed input (an agent id or pending task id given
    twice, a weight that is not positive); a bad task only gets a status.
    """
    return _Pass(snapshot, pending, _decide_fast).run()


def plan_exhaustive(snapshot: Snapshot, pending: Sequence[TaskRequest]) -> Plan:
    """The same plan as :func:`plan`, checking every agent for every task.

    The reference that ``plan`` is tested against, and the benchmark's baseline; too slow for
    a real cluster (``O(tasks * agents)``). Reasons may differ in their counts only: ``plan``
    gives identical tasks the reason found for the first of them.
    """
    return _Pass(snapshot, pending, _decide_exhaustive).run()


class _Pass:
    """One plan in the making: the stages over the pending tasks, in fair-share order."""

    def __init__(self, snapshot: Snapshot, pending: Sequence[TaskRequest], decide: _Decide) -> None:
        self.snapshot, self.pending, self.decide = snapshot, pending, decide
        self.state = PlanState(snapshot, tracked_fields(pending))
        placed_ids = {task.task_id: task.agent_id for task in snapshot.placed}
        self.cohorts, self.waiting = build_cohorts(pending, self.state, placed_ids)

    def run(self) -> Plan:
        """Decide every pending task, then find the preemptions; the plan."""
        state, cohorts, waiting, decide = self.state, self.cohorts, self.waiting, self.decide
        gangs = gangs_of(self.pending)  # empty unless some task is all-or-nothing
        queue = FairQueue(
            (task for task in self.pending if task.id in cohorts),
            usage=state.usage,
            capacity=state.capacity,
            weights=self.snapshot.weights,
            past=self.snapshot.past,
        )
        for task in queue:
            if task.gang is None:
                cohort = cohorts[task.id]
                status = decide(task, cohort, state)
                _finished(cohort)
                if status is not None:
                    waiting[task.id] = status
            elif task.gang in gangs:  # the gang's first member: decide them all now
                self._decide_gang(task.gang, gangs.pop(task.gang))
        preemptions = (
            preempt(state, self.snapshot, self.pending, cohorts, waiting)
            if self.snapshot.preemption
            else ()
        )
        return Plan(tuple(state.placements), waiting, preemptions)

    def _decide_gang(self, gang: str, members: list[TaskRequest]) -> None:
        """Place every member of ``gang`` tentatively, then keep them all or none (permit)."""
        cohorts, waiting = self.cohorts, self.waiting
        # A member refused before any agent was looked at dooms the gang: try nothing.
        refusal = next(((m.id, waiting[m.id]) for m in members if m.id not in cohorts), None)
        nodes = refusal is None and members[0].gang_node is not None
        self.state.begin()
        if refusal is None and (missing := incomplete(gang, members)) is not None:
            verdict = missing
        elif nodes:
            verdict = self._place_nodes(gang, members)
        else:
            for member in members:
                cohort = cohorts.get(member.id)
                if cohort is not None and refusal is None:
                    status = self.decide(member, cohort, self.state)
                    if status is not None:
                        refusal = (member.id, status)
            verdict = permit(gang, len(members), refusal)
        for member in members:
            if (cohort := cohorts.get(member.id)) is not None:
                _finished(cohort)
        if verdict.fits:
            self.state.commit()
            return
        ranks = self.state.rollback()
        revive(dict.fromkeys(cohorts[m.id].shape for m in members if m.id in cohorts), ranks)
        if nodes and verdict is _NOT_YET:
            # Said on the plan as it was before the gang: its room counted as free again.
            verdict = nodes_status(gang, members, cohorts[members[0].id], self.state)
        for member in members:
            waiting[member.id] = verdict

    def _place_nodes(self, gang: str, members: list[TaskRequest]) -> Status:
        """A gang of nodes: FITS once placed (tentatively); an UNSCHEDULABLE status without a
        reason when some node found no agent (the caller explains once it rolled back)."""
        cohort = self.cohorts[members[0].id]
        if any(self.cohorts[m.id] is not cohort for m in members):
            return Status(Code.UNRESOLVABLE, f"gang {gang}: its members differ in shape or owner")
        return FITS if place_nodes(members, cohort, self.state) else _NOT_YET


def _finished(cohort: Cohort) -> None:
    cohort.remaining -= 1
    if cohort.remaining == 0:
        cohort.own = None  # that was the last member: free the private ranking's memory


def _decide_fast(task: TaskRequest, cohort: Cohort, state: PlanState) -> Status | None:
    """Place ``task`` and return None, or return why it cannot be placed."""
    group_placed = state.placed_in_group.get(task.group, 0)
    if cohort.failure is not None and (cohort.monotone or cohort.failed_at == group_placed):
        # Nothing that could help this cohort has happened since its last task failed.
        return cohort.failure
    status = state.quota_refusal(task.owner, task.resources)
    if status is None:
        rank = select_fast(cohort, state) if cohort.monotone else select_scan(cohort, state)
        if rank is not None:
            state.place(task, rank)
            return None
        status = explain(cohort, state)
    cohort.failure, cohort.failed_at = status, group_placed
    return status


def _decide_exhaustive(task: TaskRequest, cohort: Cohort, state: PlanState) -> Status | None:
    status = state.quota_refusal(task.owner, task.resources)
    if status is not None:
        return status
    rank, status = select_exhaustive(cohort, state)
    if rank is None:
        return status
    state.place(task, rank)
    return None
