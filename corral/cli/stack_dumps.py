"""``kill -USR1`` on a master or an agent: every thread's stack, then every asyncio task's await
chain, printed to its stderr, and the process goes on. What a wedged daemon waits for, without
stopping it (Go's SIGQUIT, minus the exit)."""

from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
from collections.abc import Coroutine, Iterator
from typing import Any


def install() -> None:
    """Dump stacks on SIGUSR1 from now on. Call it on the running loop."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _print_tasks)
    # Threads from the signal handler itself (it works while the loop is stuck); it then
    # chains to the loop's handler, which prints the tasks once the loop gets to it.
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)


def _print_tasks() -> None:
    for task in asyncio.all_tasks():
        print(f"asyncio task {task.get_name()!r}:", file=sys.stderr)
        for where in await_chain(task.get_coro()):
            print(f"  {where}", file=sys.stderr)


def await_chain(coro: Coroutine[Any, Any, Any] | Any) -> Iterator[str]:
    """Where a suspended coroutine is, outermost first, down the chain of what each awaits
    (a task's own stack shows only its outermost frame)."""
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            yield f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
