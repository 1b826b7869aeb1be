"""Time as a parameter: the master and the agent read clocks only through a ``Clock``."""

import time
from typing import Protocol


class Clock(Protocol):
    """A source of wall-clock time and of a monotonic time for measuring intervals."""

    def now(self) -> float:
        """The current wall-clock time, seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts; its origin is arbitrary)."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> float:
        """The current time."""
        return time.time()

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()
