"""A command run inside a process task on a terminal of its own (``corral exec -t``): a new
pseudo-terminal whose other side the agent reads and writes, as ``docker exec -t`` or ``ssh -t``
give one.

The command joins the task's cgroups as any exec does (``process_exec.JOIN``), then a few lines
of Python make the terminal its controlling terminal in a session of its own (``login_tty``)
before it runs, so that job control, ``^C`` and window sizes work. Once it has ended, whatever
is left in its session is killed: it would keep the terminal open, and nothing of an exec
outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import sys
import termios
from collections.abc import Mapping, Sequence
from pathlib import Path

from corral.agent.executors.base import ExecError
from corral.agent.executors.process_exec import JOIN
from corral.spec.execs import EOF_CHAR, EXEC_CHUNK, STDOUT, TerminalSize

# Arguments: the command. Standard input is the terminal; it becomes the controlling one.
LOGIN = """\
import os, sys
os.login_tty(0)
try:
    os.execvp(sys.argv[1], sys.argv[1:])
except OSError as e:
    print(f"corral: {sys.argv[1]}: {e.strerror}", file=sys.stderr)
    sys.exit(127)
"""


def set_size(fd: int, size: TerminalSize) -> None:
    """Give the terminal of ``fd`` a window size (its foreground processes get SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def _session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid pgrp session ...: the name may hold anything but ")".
    return int(stat[stat.rindex(")") + 2 :].split()[3])


def kill_session(sid: int) -> None:
    """SIGKILL every process of the session ``sid`` (its jobs have process groups of their
    own, but all hold its terminal)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _session_of(int(entry)) == sid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry), signal.SIGKILL)


class TtyExec:
    """A command started by :func:`start_tty_exec`: the agent's side of its terminal."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self._proc = proc
        self._master = master
        self._eof = False
        self._ended = asyncio.create_task(self._reap())

    async def _reap(self) -> int:
        code = await self._proc.wait()
        kill_session(self._proc.pid)  # what it left would hold the terminal open
        return 128 - code if code < 0 else code

    async def _ready(self, writing: bool) -> None:
        """Wait until the terminal can be read (or written)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        if writing:
            loop.add_writer(self._master, wake)
        else:
            loop.add_reader(self._master, wake)
        try:
            await ready
        finally:
            if writing:
                loop.remove_writer(self._master)
            else:
                loop.remove_reader(self._master)

    async def read(self) -> tuple[int, bytes] | None:
        """The next piece of output (all of it as stdout); None once the terminal has closed."""
        while not self._eof:
            try:
                data = os.read(self._master, EXEC_CHUNK)
            except BlockingIOError:
                await self._ready(writing=False)
                continue
            except OSError:  # EIO: nothing holds the terminal any more
                data = b""
            if data:
                return STDOUT, data
            self._eof = True
        return None

    async def write(self, data: bytes) -> None:
        """Type ``data`` on the terminal; dropped once it has closed."""
        while data and not self._eof:
            try:
                data = data[os.write(self._master, data) :]
            except BlockingIOError:
                await self._ready(writing=True)
            except OSError:
                return

    async def close_input(self) -> None:
        """The caller's input has ended: type the terminal's end of input."""
        await self.write(EOF_CHAR)

    async def resize(self, size: TerminalSize) -> None:
        """Give the terminal a new window size."""
        if not self._eof:
            with contextlib.suppress(OSError):
                set_size(self._master, size)

    async def wait(self) -> int | None:
        """The command's exit status (128 + N when signal N killed it)."""
        code = await asyncio.shield(self._ended)
        if self._master >= 0:
            self._eof = True
            os.close(self._master)
            self._master = -1
        return code

    async def kill(self) -> None:
        """SIGKILL the command and its session. Idempotent."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()  # also before it has a session of its own
            kill_session(self._proc.pid)


async def start_tty_exec(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    cgroup_procs: Sequence[Path],
    size: TerminalSize | None,
) -> TtyExec:
    """Start ``command`` on a new terminal (of window ``size``), inside the given cgroups."""
    master, terminal = os.openpty()
    os.set_blocking(master, False)
    if size is not None:
        set_size(master, size)
    login = [sys.executable, "-I", "-S", "-c", LOGIN]
    argv = ["/bin/sh", "-c", JOIN, "corral-exec", *map(str, cgroup_procs), "--", *login, *command]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=terminal, stdout=terminal, stderr=terminal, env=dict(env), cwd=cwd
        )
    except OSError as exc:
        os.close(master)
        raise ExecError(f"cannot start the command: {exc.strerror or exc}") from None
    finally:
        os.close(terminal)
    return TtyExec(proc, master)
