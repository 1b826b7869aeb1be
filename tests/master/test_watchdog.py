"""The watchdog names what holds the master up while it does: a writer's turn held too long
(a stalled store) or an event loop that stopped turning, each with the stack responsible."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.clock import SystemClock
from corral.master.events import EventBus
from corral.master.state import ClusterState
from corral.master.watchdog import Watchdog
from corral.store.store import Store

WAIT = 10.0  # seconds: a deadline, never a pause


class Told(logging.Handler):
    """Sets ``seen`` once the watchdog logs a record holding ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = threading.Event()
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.message = record.getMessage()
            self.seen.set()


def told(text: str) -> Iterator[Told]:
    handler = Told(text)
    logger = logging.getLogger("corral.master.watchdog")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def turn_held() -> Iterator[Told]:
    yield from told("writer's turn has been held")


@pytest.fixture
def loop_stalled() -> Iterator[Told]:
    yield from told("event loop has not turned")


def test_a_turn_held_too_long_is_logged_with_the_holder_s_stack(
    tmp_path: Path, turn_held: Told
) -> None:
    state = ClusterState(Store.in_dir(tmp_path), EventBus(), SystemClock())

    def slow_store_write() -> None:
        # Holds the turn, as a write on a stalled store would, until the watchdog said so.
        assert turn_held.seen.wait(WAIT), "the watchdog said nothing"

    async def main() -> None:
        state.attach(asyncio.get_running_loop())
        dog = Watchdog(SystemClock(), state.turn_held, after=0.05, every=0.01)
        dog.start()
        try:
            await state.write(slow_store_write)
        finally:
            dog.stop()

    asyncio.run(main())
    assert "slow_store_write" in turn_held.message
    assert state.turn_held() is None  # released with the write


def test_a_loop_that_stops_turning_is_logged_with_where_it_is(loop_stalled: Told) -> None:
    def blocking_call() -> None:
        # Blocks the loop's thread until the watchdog has named it.
        assert loop_stalled.seen.wait(WAIT), "the watchdog said nothing"

    async def main() -> None:
        dog = Watchdog(SystemClock(), lambda: None, after=0.05, every=0.01)
        dog.start()
        try:
            blocking_call()
        finally:
            dog.stop()

    asyncio.run(main())
    assert "blocking_call" in loop_stalled.message
