"""Blocking calls made in one turn of the event loop, run together in one worker thread.

A hop to a worker thread costs the agent about 0.2 ms of CPU per call (an executor item, a
thread woken, futures chained back to the loop): as much as preparing a task's sandbox and
cgroups itself. A message of launches asks for dozens of preparations at once; batched, they
take one hop, and the loop still never blocks on the disk.

The callers hear of their outcomes together, once the hop's last call is done: the loop is
woken once per hop, not once per call. Woken per call, the loop took the GIL back between the
thread's calls, and the tasks' spawn requests reached the keeper one by one, each a burst of
its own (docs/performance.md, "Tenth pass"): a tenth more CPU per task for the agent.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[Callable[[], Any], asyncio.Future[Any]]
_Outcome = tuple[asyncio.Future[Any], bool, Any]  # caller, returned?, result or exception


class ThreadBatch:
    """Runs blocking calls off the loop, those made in the same turn in one thread hop, in the
    order they were made; each caller gets its own result or exception once the hop is done."""

    def __init__(self) -> None:
        self._queued: list[_Call] = []

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, with the other calls of this turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)  # after the other calls this turn makes
        self._queued.append((functools.partial(fn, *args), future))
        return await future

    def _flush(self) -> None:
        calls, self._queued = self._queued, []
        hop = asyncio.ensure_future(asyncio.to_thread(_run_all, calls, asyncio.get_running_loop()))
        # Should the hop itself fail (the loop's executor shut down), its callers hear of it.
        hop.add_done_callback(lambda done: _fail_all(calls, done))


def _run_all(calls: list[_Call], loop: asyncio.AbstractEventLoop) -> None:
    """Run each call, then hand every caller its outcome on the loop, in one go; in the worker
    thread."""
    outcomes: list[_Outcome] = []
    for fn, future in calls:
        try:
            outcomes.append((future, True, fn()))
        except BaseException as exc:  # handed to its caller, as to_thread would
            outcomes.append((future, False, exc))
    loop.call_soon_threadsafe(_settle_all, outcomes)


def _settle_all(outcomes: list[_Outcome]) -> None:
    """Hand the callers of one hop their outcomes (on the loop)."""
    for future, ok, value in outcomes:
        _settle(future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Hand a caller its outcome (on the loop); a cancelled caller gets nothing."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _fail_all(calls: list[_Call], done: asyncio.Future[None]) -> None:
    if done.cancelled() or done.exception() is not None:
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        for _, future in calls:
            _settle(future, False, error)
