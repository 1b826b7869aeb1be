"""Ordering: which pending task is considered next, by Dominant Resource Fairness across owners.

An owner's dominant share is the largest fraction of any cluster resource they hold, divided by
their weight. The owner with the smallest share goes next, ties broken by name; within an owner,
higher priority first, then lower ``order`` (submission order), then task id. Shares are
re-evaluated after every decision, so two owners with equal needs take turns.

What an owner holds, for this ranking, is what they hold now plus their decayed past
(``Snapshot.past``): an owner who held the whole cluster for a half-life's mean life counts as
holding it once more. So an owner who ran all of yesterday goes behind one who did not, by at
most their decayed share, and is never shut out: once the other holds that much more than
them, they take turns again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from heapq import heapify, heappop, heappush

from corral.scheduler.model import Resources, TaskRequest

NOTHING = Resources()


def dominant_share(usage: Resources, capacity: Resources, weight: float = 1.0) -> float:
    """``max(usage / capacity)`` over the resources the cluster has, divided by ``weight``."""
    share = 0.0
    for used, total in (
        (usage.millicpus, capacity.millicpus),
        (usage.mem, capacity.mem),
        (usage.disk, capacity.disk),
        (usage.gpus, capacity.gpus),
    ):
        if total > 0:
            share = max(share, used / total)
    return share / weight


def within_owner(task: TaskRequest) -> tuple[int, int, str]:
    """The sort key of an owner's own tasks: priority descending, then order, then id."""
    return (-task.priority, task.order, task.id)


class FairQueue:
    """Pending tasks in DRF order; iterate to get them one at a time.

    ``usage`` is read live (owner -> resources held): the caller records each placement there
    before asking for the next task, and the owner's share is re-evaluated from it.
    """

    def __init__(
        self,
        tasks: Iterable[TaskRequest],
        usage: Mapping[str, Resources],
        capacity: Resources,
        weights: Mapping[str, float],
        past: Mapping[str, Resources] | None = None,
    ) -> None:
        for owner, weight in sorted(weights.items()):
            if not (math.isfinite(weight) and weight > 0):
                raise ValueError(f"weight of owner {owner!r} must be > 0, not {weight!r}")
        self._usage = usage
        self._capacity = capacity
        self._weights = weights
        self._past = past or {}
        by_owner: dict[str, list[TaskRequest]] = {}
        for task in tasks:
            by_owner.setdefault(task.owner, []).append(task)
        self._queues = {
            owner: deque(sorted(owned, key=within_owner)) for owner, owned in by_owner.items()
        }
        # Each owner's share with the usage it was computed from: usage values are immutable
        # and replaced on every change, so the same object means the same share. Most tasks
        # of a long queue are refused (no room), which changes nothing: no need to recompute.
        self._shares: dict[str, tuple[Resources, float]] = {}
        self._heap = [(self.share(owner), owner) for owner in self._queues]
        heapify(self._heap)

    def share(self, owner: str) -> float:
        """The owner's weighted dominant share, from the live usage."""
        usage = self._usage.get(owner, NOTHING)
        known = self._shares.get(owner)
        if known is not None and known[0] is usage:
            return known[1]
        past = self._past.get(owner)
        held = usage if past is None else usage + past
        share = dominant_share(held, self._capacity, self._weights.get(owner, 1.0))
        self._shares[owner] = (usage, share)
        return share

    def __iter__(self) -> Iterator[TaskRequest]:
        heap = self._heap
        while heap:
            _, owner = heappop(heap)
            queue = self._queues[owner]
            yield queue.popleft()
            # Resumed after the caller placed (or gave up on) that task: re-rank the owner.
            if queue:
                heappush(heap, (self.share(owner), owner))
