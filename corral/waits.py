"""Waiting for an event with a deadline, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` runs what it awaits as a task of its own, and when that
task finishes in the same turn of the event loop as the caller is cancelled, it returns the
result and the cancellation is lost. A loop waiting for its wake-up that way, cancelled as it
is woken, runs on, and whoever waits for it to end waits for ever (a master that did not stop
on SIGTERM). ``asyncio.timeout`` awaits in the caller's own task: a cancellation always ends it.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set, for at most ``timeout`` seconds (None: no limit). Answers
    whether it was set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
