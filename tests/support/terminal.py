"""A program run on a pseudo-terminal, as a user at a terminal runs it: what it writes is read
from the terminal's other side, keys are typed there, and the window can be resized."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence

# Make the terminal on stdin the controlling terminal of a new session, then run the program:
# it is the terminal's foreground process, so it gets SIGWINCH when the window changes.
LOGIN = "import os, sys; os.login_tty(0); os.execvp(sys.argv[1], sys.argv[1:])"


def set_window(fd: int, width: int, height: int) -> None:
    """Resize the terminal of ``fd`` (its foreground process group gets SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class Terminal:
    """``argv`` running on a new pseudo-terminal of window ``width`` × ``height``."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], width: int = 100, height: int = 30
    ) -> None:
        self.master, slave = os.openpty()
        set_window(slave, width, height)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LOGIN, *argv],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=dict(env),
            )
        finally:
            os.close(slave)
        self.seen = b""  # all it has written
        self._read_to = 0  # where the last expect matched

    def type(self, keys: str | bytes) -> None:
        """Type ``keys`` (a str as UTF-8)."""
        os.write(self.master, keys.encode() if isinstance(keys, str) else keys)

    def expect(self, pattern: str, timeout: float = 30) -> re.Match[bytes]:
        """Wait until the output since the last match matches ``pattern``; the match."""
        wanted = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while not (found := wanted.search(self.seen, self._read_to)):
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"no {pattern!r} in what the terminal showed:\n{self.seen!r}")
        self._read_to = found.end()
        return found

    def _read(self, timeout: float) -> bool:
        """Read what the program wrote within ``timeout``; False if nothing came or it has
        closed the terminal."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the program and all it started have closed the terminal
            return False
        self.seen += data
        return bool(data)

    def resize(self, width: int, height: int) -> None:
        """Resize the window, as a user dragging it."""
        set_window(self.master, width, height)

    def modes(self) -> list[int]:
        """The terminal's mode flags now: iflag, oflag, cflag, lflag."""
        return list(termios.tcgetattr(self.master)[:4])

    def wait(self, timeout: float = 30) -> int:
        """The program's exit status, once it has ended; what it wrote last is read."""
        code = self.proc.wait(timeout)
        while self._read(0):  # what it wrote is in the terminal already
            pass
        return code

    def close(self) -> None:
        """Stop the program if it still runs, close the terminal."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
