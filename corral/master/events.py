"""Fan-out of committed events to live subscribers (the SSE endpoint, the CLI's --wait)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

Event = Mapping[str, Any]


class Subscription:
    """A subscriber's queue; ``overflowed`` is set if it fell too far behind and was dropped."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.overflowed = asyncio.Event()


class EventBus:
    """Publishes events after they are committed. A slow subscriber is cut off, not waited for:
    it reconnects with the last id it saw and reads the rest from the store."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self._subs: set[Subscription] = set()
        self._size = queue_size

    def subscribe(self) -> Subscription:
        """Start receiving events published from now on."""
        sub = Subscription(self._size)
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
        """Hand committed events to every subscriber."""
        for sub in list(self._subs):
            try:
                for ev in events:
                    sub.queue.put_nowait(ev)
            except asyncio.QueueFull:
                self._subs.discard(sub)
                sub.overflowed.set()
