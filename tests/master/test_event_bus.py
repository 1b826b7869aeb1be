"""The event bus hands each subscriber every committed event in order, several changes' at once,
and cuts off a subscriber that fell more than its size behind (it reads the rest from the store)."""

from __future__ import annotations

import asyncio

from corral.master.events import EventBus


def events(first: int, n: int) -> list[dict[str, int]]:
    return [{"id": i} for i in range(first, first + n)]


def test_a_subscriber_takes_every_event_published_since_it_last_took_in_order() -> None:
    async def scenario() -> None:
        bus = EventBus(queue_size=10)
        sub = bus.subscribe()
        assert not sub.ready.is_set()
        bus.publish(events(1, 3))
        bus.publish([])
        bus.publish(events(4, 2))
        await asyncio.wait_for(sub.ready.wait(), 1)
        assert [e["id"] for e in sub.take()] == [1, 2, 3, 4, 5]
        assert not sub.ready.is_set() and sub.take() == []
        bus.publish(events(6, 1))
        assert sub.ready.is_set() and [e["id"] for e in sub.take()] == [6]

    asyncio.run(scenario())


def test_a_subscriber_more_than_its_size_behind_is_cut_off_and_the_others_go_on() -> None:
    async def scenario() -> None:
        bus = EventBus(queue_size=5)
        slow, quick = bus.subscribe(), bus.subscribe()
        bus.publish(events(1, 4))
        assert [e["id"] for e in quick.take()] == [1, 2, 3, 4]
        bus.publish(events(5, 2))  # slow would hold 6
        assert slow.overflowed.is_set() and not quick.overflowed.is_set()
        bus.publish(events(7, 1))
        assert [e["id"] for e in quick.take()] == [5, 6, 7]
        assert [e["id"] for e in slow.take()] == [1, 2, 3, 4]  # nothing after it was cut off

    asyncio.run(scenario())


def test_a_filtered_subscriber_is_handed_and_woken_for_its_events_only() -> None:
    async def scenario() -> None:
        bus = EventBus(queue_size=3)
        odd = bus.subscribe(keep=lambda e: e["id"] % 2 == 1)
        bus.publish([{"id": 2}, {"id": 4}])
        assert not odd.ready.is_set()  # nothing for it: not woken
        bus.publish(events(5, 4))  # 5..8; two of them are its own
        bus.publish([{"id": 10}, {"id": 12}])  # would overflow it if counted
        assert not odd.overflowed.is_set()
        assert [e["id"] for e in odd.take()] == [5, 7]

    asyncio.run(scenario())
