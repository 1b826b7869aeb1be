"""Says in the log what holds the master up, while it does: the writer's turn held, or the event
loop not turning, for longer than a few seconds, with the stack of the thread responsible. A
store that stalls (a slow disk, a PostgreSQL that stopped answering) or a bug that blocks the
loop is then named the moment it happens, not guessed at from its effects."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import traceback
from collections.abc import Callable

from corral.clock import Clock

log = logging.getLogger(__name__)

Holder = tuple[int, float]  # a thread's id, and since when (the clock's monotonic time)


def stack_of(thread_id: int) -> str:
    """Where a thread of this process is now."""
    frame = sys._current_frames().get(thread_id)
    return "".join(traceback.format_stack(frame)) if frame is not None else "(thread gone)\n"


class Watchdog:
    """A thread that looks every ``every`` seconds at who holds the writer's turn (``turn``)
    and when the loop last turned; each stall longer than ``after`` is logged once."""

    def __init__(
        self,
        clock: Clock,
        turn: Callable[[], Holder | None],
        after: float = 5.0,
        every: float = 1.0,
    ) -> None:
        self.clock = clock
        self.turn = turn
        self.after = after
        self.every = every
        self._stop = threading.Event()
        self._beat = 0.0  # when the loop last turned
        self._loop_thread = 0
        self._beater: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (on the running loop, whose turning it watches)."""
        self._loop_thread = threading.get_ident()
        self._beat = self.clock.monotonic()
        self._beater = asyncio.create_task(self._beats(), name="watchdog beat")
        threading.Thread(target=self._watch, name="watchdog", daemon=True).start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._beater is not None:
            self._beater.cancel()

    async def _beats(self) -> None:
        while True:
            self._beat = self.clock.monotonic()
            await asyncio.sleep(self.every)

    def _watch(self) -> None:
        told_turn: Holder | None = None
        told_loop = False
        while not self._stop.wait(self.every):
            now = self.clock.monotonic()
            held = self.turn()
            if held is not None and held != told_turn and now - held[1] > self.after:
                told_turn = held
                log.warning(
                    "the writer's turn has been held for %.1fs, by:\n%s",
                    now - held[1],
                    stack_of(held[0]),
                )
            # A beat is due every ``every``: late by more than ``after`` is a stalled loop.
            stalled = now - self._beat - self.every
            if stalled > self.after and not told_loop:
                told_loop = True
                log.warning(
                    "the event loop has not turned for %.1fs; it is at:\n%s",
                    stalled,
                    stack_of(self._loop_thread),
                )
            elif stalled <= self.after:
                told_loop = False
