"""The caller's terminal for ``corral exec -t``: its size, raw mode while the remote terminal
does the echoing and line editing, and its resizes passed on."""

from __future__ import annotations

import contextlib
import os
import signal
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from typing import TextIO

Size = tuple[int, int]  # a window: (width, height)
Resize = Callable[[int, int], None]


def size_of(*streams: TextIO) -> Size | None:
    """The window (width, height) of the first of ``streams`` that is a terminal."""
    for stream in streams:
        with contextlib.suppress(OSError, ValueError):
            columns, lines = os.get_terminal_size(stream.fileno())
            return columns, lines
    return None


@contextlib.contextmanager
def raw(stream: TextIO) -> Iterator[None]:
    """``stream``'s terminal in raw mode (every key passed on as it is typed, ^C included),
    as it was again afterwards."""
    fd = stream.fileno()
    before = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: what was typed ahead is kept
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, before)


def follow_resizes(size: Callable[[], Size | None]) -> Callable[[Resize], None]:
    """What to give ``exec_task``'s ``on_open``: on every SIGWINCH, pass ``size()`` on. The
    handler only wakes a thread, which sends (a handler must not wait for the connection)."""

    def start(resize: Resize) -> None:
        changed = threading.Event()

        def pass_on() -> None:
            while changed.wait():
                changed.clear()
                if (now := size()) is not None:
                    resize(*now)

        threading.Thread(target=pass_on, daemon=True, name="resizes").start()
        signal.signal(signal.SIGWINCH, lambda *_: changed.set())

    return start
