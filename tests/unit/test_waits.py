"""Waiting for an event with a deadline, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` returns the result when the awaited thing finishes in the
same turn of the loop as its caller is cancelled: the cancellation is lost. A master's loops
waited for their wake-ups that way, and a master whose loop was cancelled as it was woken never
stopped (seen: ``corral master`` still serving after SIGTERM, waiting for its scheduler loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from corral.cli.follow import nap
from corral.waits import wait_event

DEADLINE = 10.0


def test_a_wait_answers_whether_the_event_was_set() -> None:
    async def scenario() -> tuple[bool, bool]:
        event = asyncio.Event()
        unset = await wait_event(event, 0.01)
        event.set()
        return unset, await wait_event(event, DEADLINE)

    assert asyncio.run(scenario()) == (False, True)


@pytest.mark.parametrize(
    "waits",
    [
        pytest.param(lambda event: wait_event(event, DEADLINE), id="wait_event"),
        pytest.param(lambda event: nap(event, DEADLINE), id="the CLI's nap"),
    ],
)
def test_a_cancellation_that_comes_as_the_event_is_set_is_not_lost(
    waits: Callable[[asyncio.Event], Awaitable[object]],
) -> None:
    async def scenario() -> bool:
        event = asyncio.Event()

        async def waiter() -> None:
            await waits(event)

        task = asyncio.create_task(waiter())
        for _ in range(3):  # the waiter, and whatever it waits through, are waiting
            await asyncio.sleep(0)
        event.set()  # in the same turn of the loop as the cancellation
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=DEADLINE)
        return task in done and task.cancelled()

    assert asyncio.run(scenario())
