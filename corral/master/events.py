"""Fan-out of committed events to live subscribers (the SSE endpoint, the CLI's --wait)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Event = Mapping[str, Any]
EventFilter = Callable[[Event], bool]


class Subscription:
    """A subscriber's events not taken yet; ``overflowed`` is set if it fell too far behind
    and was dropped."""

    def __init__(self, size: int, keep: EventFilter | None = None) -> None:
        self.size = size
        self.keep = keep  # the events it is handed (all, if None)
        self.pending: deque[Event] = deque()
        self.ready = asyncio.Event()  # set when events are pending
        self.overflowed = asyncio.Event()

    def take(self) -> list[Event]:
        """Every pending event, oldest first; none pending after."""
        taken = list(self.pending)
        self.pending.clear()
        self.ready.clear()
        return taken


class EventBus:
    """Publishes events after they are committed. A slow subscriber is cut off, not waited for:
    it reconnects with the last id it saw and reads the rest from the store."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self._subs: set[Subscription] = set()
        self._size = queue_size

    def subscribe(self, keep: EventFilter | None = None) -> Subscription:
        """Start receiving events published from now on (only those ``keep`` accepts, if
        given: a subscriber is not woken, nor counted behind, for the others)."""
        sub = Subscription(self._size, keep)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop receiving events (idempotent)."""
        self._subs.discard(sub)

    def cut_off_all(self) -> None:
        """Cut every subscriber off, as if it fell behind (this master stepped down): each
        reconnects with the last id it saw, and is handed to the leader."""
        for sub in list(self._subs):
            sub.overflowed.set()
        self._subs.clear()

    def publish(self, events: Sequence[Event]) -> None:
        """Hand committed events to every subscriber (a change's events at once: a busy master
        publishes thousands a second)."""
        if not events:
            return
        for sub in list(self._subs):
            handed = events if sub.keep is None else [e for e in events if sub.keep(e)]
            if not handed:
                continue
            if len(sub.pending) + len(handed) > sub.size:
                self._subs.discard(sub)
                sub.overflowed.set()
                continue
            sub.pending.extend(handed)
            sub.ready.set()
