"""The waiting room: the master's PENDING tasks, filed by cohort as they come and go.

A scheduling pass needs of the waiting work only what the free room can take
(``corral.scheduler.window``): the first ``room_for + 1`` members of each cohort in their
owner's order, and every member of a cohort the window does not cut (a gang's, one with
GROUP_BY, tasks asking for nothing; all of them when the plan looks for preemptions). Filed here
as they arrive, those are found without a walk over every waiting task, and the members a pass
leaves out learn why they wait through their cohort (``Cohort.noted``), not one by one: a pass
costs what the room takes, not what waits. Tasks in a retry's backoff are kept aside until it
ends. A task's request for the core (``request_of``) is made when a pass first takes it: the
tasks that wait their turn do not hold one.
"""

from __future__ import annotations

import heapq
import itertools
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from corral.master.gangs import gang_key, request_fields
from corral.master.records import Cohort, LiveTask
from corral.scheduler.cohorts import CohortKey, ShapeKey, shape_key
from corral.scheduler.model import Plan, Resources, Snapshot, TaskRequest
from corral.scheduler.window import room_for, windowable
from corral.store.rows import LaunchFacts, Rule


def waiting_since(task: LiveTask) -> float:
    """When a pending task began to wait for a place: when it was made, or when its backoff
    ended."""
    return max(task.created_at, task.not_before or 0.0)


def request_of(task: LiveTask) -> TaskRequest:
    """What the core needs to know of a pending task. Made once while it waits: all of it
    comes from its row, which does not change while it is pending, but for when it began to
    wait (its backoff may be lifted)."""
    since = waiting_since(task)
    made = task.request
    if made is not None and made.waiting_since == since:
        return made
    gang, gang_node, gang_size = request_fields(task)
    task.request = request = TaskRequest(
        id=task.id,
        group=task.job,
        resources=task.resources,
        driver=task.driver,
        constraints=task.constraints,
        strategy=task.strategy,
        owner=task.owner,
        priority=task.priority,
        order=task.order,
        host_paths=task.host_paths,
        privileged=task.privileged,
        host_ports=task.host_ports,
        gang=gang,
        gang_node=gang_node,
        gang_size=gang_size,
        waiting_since=since,
    )
    return request


_cohorts: weakref.WeakValueDictionary[CohortKey, Cohort] = weakref.WeakValueDictionary()
# A task's shape follows from its launch's facts, its strategy and its rules, which the tasks of
# an array share: read once per array, not once per task (100,000 of them filed at a submit).
_shapes: dict[tuple[LaunchFacts, str, tuple[Rule, ...]], ShapeKey] = {}
_SHAPES_KEPT = 4096


def key_of(task: LiveTask) -> CohortKey:
    """``cohort_key`` of the task's request, read off the task itself: a waiting task is filed
    without a request, made only when a pass takes it."""
    row = task.row
    found = (row.launch.facts, row.strategy, row.rules)
    shape = _shapes.get(found)
    if shape is None:
        if len(_shapes) >= _SHAPES_KEPT:
            _shapes.clear()
        shape = _shapes[found] = shape_key(task)
    return (task.job, task.owner, gang_key(task), shape)


def cohort_of(task: LiveTask) -> Cohort:
    """The object that stands for ``task``'s cohort: the same for every task of it (weakly
    interned: it lives while some waiting task is filed under it)."""
    key = key_of(task)
    found = _cohorts.get(key)
    if found is None:
        found = _cohorts[key] = Cohort()
    return found


def _rank(task: LiveTask) -> tuple[int, int, str]:
    """A task's place among its owner's (``fairshare.within_owner`` of its request)."""
    return (-task.priority, task.order, task.id)


class _Members:
    """A cohort's ready members in their owner's order. Most come in that order (``order``
    grows with each task made) and are appended to ``ordered``; the others (a retry whose
    backoff ended, a task of a higher priority) are kept in ``late``, merged in when read."""

    __slots__ = ("ordered", "late", "last")

    def __init__(self) -> None:
        self.ordered: dict[str, LiveTask] = {}  # a dict: ordered, with O(1) removal
        self.late: dict[str, LiveTask] = {}
        self.last: tuple[int, int, str] | None = None  # rank of the last one appended

    def add(self, task: LiveTask) -> None:
        rank = _rank(task)
        if self.last is None or rank > self.last:
            self.ordered[task.id] = task
            self.last = rank
        else:
            self.late[task.id] = task

    def discard(self, task_id: str) -> None:
        if self.ordered.pop(task_id, None) is None:
            self.late.pop(task_id, None)

    def __len__(self) -> int:
        return len(self.ordered) + len(self.late)

    def in_order(self) -> Iterator[LiveTask]:
        if not self.late:
            return iter(self.ordered.values())
        late = sorted(self.late.values(), key=_rank)
        return heapq.merge(late, self.ordered.values(), key=_rank)


@dataclass(frozen=True, slots=True)
class Taken:
    """What one pass plans: each cohort's part of the ready tasks, as requests (``cohorts``);
    and the cohorts cut short, each with the id of the last member taken, whose status the
    members left out share (``cut``)."""

    cohorts: list[list[TaskRequest]]
    cut: list[tuple[Cohort, str]]


class WaitingRoom:
    """Every PENDING task (``tasks``, in the order they came); the ready ones filed by cohort,
    those waiting out a retry's backoff kept aside until it ends."""

    def __init__(self) -> None:
        self.tasks: dict[str, LiveTask] = {}
        self._ready: dict[Cohort, _Members] = {}
        self._backoff: dict[str, LiveTask] = {}
        self._passes = 0  # passes noted so far: tells a cohort's note from a task's own

    def add(self, task: LiveTask) -> None:
        """A task is PENDING (filed once, however often it is added)."""
        self.remove(task)
        self.tasks[task.id] = task
        if task.not_before is not None:
            self._backoff[task.id] = task
        else:
            self._file(task)

    def remove(self, task: LiveTask) -> None:
        """A task is PENDING no more (placed, ended); one not filed is ignored. The record
        filed under the task's id goes: a master loading its tasks again files new ones."""
        filed = self.tasks.pop(task.id, None)
        if filed is None:
            return
        if self._backoff.pop(task.id, None) is not None:
            return
        cohort = filed.cohort
        members = self._ready.get(cohort) if cohort is not None else None
        if members is not None:
            members.discard(task.id)
            if not members:
                del self._ready[cohort]  # type: ignore[arg-type]  # not None: it was found
        filed.cohort = None

    def _file(self, task: LiveTask) -> None:
        task.cohort = cohort = cohort_of(task)
        members = self._ready.get(cohort)
        if members is None:
            members = self._ready[cohort] = _Members()
        members.add(task)

    def any_ready(self) -> bool:
        """Whether some task waits with no backoff to wait out."""
        return bool(self._ready)

    def release(self, now: float) -> tuple[int, float | None]:
        """File the tasks whose backoff is over with the ready ones; answer how many were
        filed, and when the next backoff ends (None: no task waits for one)."""
        filed, next_end = 0, None
        for task in list(self._backoff.values()):  # few: the retries waiting to be tried
            if task.not_before is None or task.not_before <= now:
                del self._backoff[task.id]
                self._file(task)
                filed += 1
            else:
                next_end = task.not_before if next_end is None else min(next_end, task.not_before)
        return filed, next_end

    def take(self, snapshot: Snapshot, now: float) -> Taken:
        """The ready tasks a plan on ``snapshot`` needs to see (see the module docstring); a
        task asked to stop, or whose backoff was set anew, is not ready."""
        cohorts: list[list[TaskRequest]] = []
        cut: list[tuple[Cohort, str]] = []
        rooms: dict[Resources, int | None] = {}
        for cohort, members in self._ready.items():
            in_order = members.in_order()  # merged once: ``late`` is sorted for it
            first = next(in_order)
            # The members of a cohort share its size, gang and constraints: ask the first.
            example = request_of(first)
            cap: int | None = None
            if not snapshot.preemption and windowable(example):
                size = example.resources
                if size not in rooms:
                    rooms[size] = room_for(snapshot, size)
                room = rooms[size]
                cap = None if room is None else room + 1
            part: list[TaskRequest] = []
            for task in itertools.chain((first,), in_order):
                if task.kill_requested or (task.not_before is not None and task.not_before > now):
                    continue
                if len(part) == cap:
                    cut.append((cohort, part[-1].id))
                    break
                part.append(request_of(task))
            if part:
                cohorts.append(part)
        return Taken(cohorts, cut)

    def note(self, plan: Plan, taken: Taken) -> None:
        """Keep why each task ``plan`` left waiting waits (memory only: nothing stores it); the
        members ``taken`` left out of a cohort wait for the reason of its last one taken."""
        self._passes += 1
        number = self._passes
        for task_id, status in plan.waiting.items():
            task = self.tasks.get(task_id)
            if task is not None:
                task.noted, task.noted_in = status.reason, number
        for cohort, last in taken.cut:
            left = plan.waiting.get(last)
            if left is not None:
                cohort.noted, cohort.noted_in = left.reason, number
