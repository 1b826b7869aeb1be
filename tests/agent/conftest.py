"""The agent's tests run on both event loops: asyncio's own, and uvloop, which the agent daemon
runs on (``corral.cli.event_loop``). They differ where an agent feels it (a write to a closed
transport raises on uvloop; its timers may fire a moment early; its unix connections take no
abstract names): each test on both finds such a difference here, not in a cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """The loop ``asyncio.run`` gives this test: asyncio's own, or uvloop's."""
    if request.param == "uvloop":
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield request.param
    finally:
        asyncio.set_event_loop_policy(None)
