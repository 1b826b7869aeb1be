"""Time as a parameter: the master reads the wall clock only through a ``Clock``."""

import time
from typing import Protocol


class Clock(Protocol):
    """A source of wall-clock time, seconds since the epoch."""

    def now(self) -> float:
        """The current time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """The current time."""
        return time.time()
