"""The event loop that Corral's daemons (``corral master``, ``corral agent``, ``corral up``) run on.

They run on uvloop, libuv's event loop for asyncio, as uvicorn does when it is installed with its
standard extras. Their loops do little per callback and very many callbacks (WebSocket frames,
the writer's hand-offs, the task keeper's answers, timers); uvloop runs each for less CPU than the
standard loop: in ``bench/throughput.py`` the master's and agents' CPU per task fell by about a
tenth (``docs/performance.md``). Client commands keep the standard loop: they wait, not work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end on a new uvloop event loop, as ``asyncio.run`` would."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
