"""The window: the part of the pending work a plan needs to see, so that a pass costs what the
free room can take, not what waits.

A cohort (cohorts.py) without GROUP_BY rules places a prefix of its members, in the order its
owner's tasks are decided (priority, then submission order): its members are alike, free room
only shrinks within a plan, and once one is refused the rest are refused for the same reason
(the planner remembers it). And no more of them can be placed than the free room holds tasks of
their size: ``room_for``. So a plan over the first ``room_for + 1`` members of each such cohort
places exactly what a plan over all of them places, and the last member seen, refused for
certain, carries the status every member left out would have had. Members left out change
nothing for anyone else: a refused task takes no room and changes no owner's share.

Not windowed: a gang's members (placed all or none, by the gang's own rules), cohorts with
GROUP_BY (a refused member may be followed by a placed one), tasks asking for no resources (no
bound), and nothing when the plan looks for preemptions (it weighs every waiting task).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from corral.scheduler.fairshare import within_owner
from corral.scheduler.model import Operator, Plan, Resources, Snapshot, Status, TaskRequest

Planner = Callable[[Snapshot, Sequence[TaskRequest]], Plan]


def windowable(task: TaskRequest) -> bool:
    """Whether ``task``'s cohort may be cut to the free room (see the module docstring)."""
    return task.gang is None and all(c.operator is not Operator.GROUP_BY for c in task.constraints)


def room_for(snapshot: Snapshot, size: Resources) -> int | None:
    """At most how many tasks of ``size`` the schedulable agents' free room holds; None when
    ``size`` asks for nothing (no bound)."""
    asked = [
        (amount, kind)
        for amount, kind in (
            (size.millicpus, "millicpus"),
            (size.mem, "mem"),
            (size.disk, "disk"),
            (size.gpus, "gpus"),
        )
        if amount > 0
    ]
    if not asked:
        return None
    room = 0
    for agent in snapshot.agents:
        if agent.schedulable:
            free = agent.total - agent.used
            room += max(0, min(getattr(free, kind) // amount for amount, kind in asked))
    return room


@dataclass(frozen=True, slots=True)
class Window:
    """The pending tasks a plan is given (``seen``), and those left out, each group of them
    under the id of the cohort's last task seen (whose status they share)."""

    seen: list[TaskRequest]
    left: list[tuple[str, list[TaskRequest]]]

    def complete(self, result: Plan) -> Plan:
        """The plan over every pending task: ``result`` (the plan of ``seen``) with the tasks
        left out waiting for the reason of the last task of their cohort that was seen."""
        if not self.left:
            return result
        waiting: dict[str, Status] = dict(result.waiting)
        for last, tasks in self.left:
            status = waiting[last]
            for task in tasks:
                waiting[task.id] = status
        return Plan(result.placements, waiting, result.preemptions)


def window(snapshot: Snapshot, cohorts: Iterable[Sequence[TaskRequest]]) -> Window:
    """Cut each cohort (its pending tasks, grouped by ``cohort_key``) to what a plan needs to
    see; every task when the plan looks for preemptions."""
    seen: list[TaskRequest] = []
    left: list[tuple[str, list[TaskRequest]]] = []
    rooms: dict[Resources, int | None] = {}
    placed: set[str] | None = None  # ids placed already: refused each for a reason of its own
    for members in cohorts:
        first = members[0]
        if snapshot.preemption or not windowable(first):
            seen += members
            continue
        size = first.resources
        if size not in rooms:
            rooms[size] = room_for(snapshot, size)
        room = rooms[size]
        if room is None or len(members) <= room + 1:
            seen += members
            continue
        if placed is None:
            placed = {task.task_id for task in snapshot.placed}
        # A task placed already is refused for a reason of its own: always seen.
        again = [task for task in members if task.id in placed]
        waiting = [task for task in members if task.id not in placed] if again else members
        if len(waiting) <= room + 1:
            seen += members
            continue
        ahead = heapq.nsmallest(room + 1, waiting, key=within_owner)
        kept = {task.id for task in ahead}
        seen += ahead + again
        left.append((ahead[-1].id, [task for task in waiting if task.id not in kept]))
    return Window(seen, left)


def windowed_plan(
    planner: Planner, snapshot: Snapshot, cohorts: Iterable[Sequence[TaskRequest]]
) -> Plan:
    """``planner`` over the window of ``cohorts``, completed for the tasks left out."""
    cut = window(snapshot, cohorts)
    return cut.complete(planner(snapshot, cut.seen))
