"""Commands run inside a process task (``corral exec``, a gang's remote shell): in the task's
working directory, with its environment, inside its cgroups, so they count against its limits
and die with it.

The command is a child of the agent in a session of its own, started through a few lines of
``/bin/sh`` that join the task's cgroups before the command exists (as the task's own wrapper
does). Once the command has ended, whatever it left running in its session is killed: it would
hold the output open, and nothing of an exec outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from corral.agent.executors.base import ExecError
from corral.spec.execs import EXEC_CHUNK, STDERR, STDOUT, TerminalSize

# Arguments: the cgroup.procs files to join, "--", the command.
JOIN = """\
while [ "$1" != -- ]; do
  echo "$$" > "$1" || { echo "corral: cannot join the task's cgroup" >&2; exit 126; }
  shift
done
shift
exec "$@"
"""


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class ProcessExec:
    """A command started by :func:`start_exec`: its output merged from two pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._output: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=16)
        self._open = 2  # output streams not at their end yet
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._pump(STDOUT, proc.stdout)),
            asyncio.create_task(self._pump(STDERR, proc.stderr)),
        ]
        self._ended = asyncio.create_task(self._reap())

    async def _pump(self, stream: int, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(EXEC_CHUNK):
            await self._output.put((stream, chunk))
        await self._output.put(None)

    async def _reap(self) -> int:
        code = await self._proc.wait()
        _kill_group(self._proc.pid)  # what it left behind would keep the output open
        return 128 - code if code < 0 else code  # asyncio's -N: killed by signal N

    async def write(self, data: bytes) -> None:
        """Give the command input; input to a command that has ended is dropped."""
        stdin = self._proc.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(ConnectionError):
            stdin.write(data)
            await stdin.drain()

    async def close_input(self) -> None:
        """End the command's input. Idempotent."""
        stdin = self._proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    async def read(self) -> tuple[int, bytes] | None:
        """The next piece of output; None once both streams have ended."""
        while self._open:
            item = await self._output.get()
            if item is not None:
                return item
            self._open -= 1
        return None

    async def wait(self) -> int | None:
        """The command's exit status (128 + N when signal N killed it)."""
        return await asyncio.shield(self._ended)

    async def kill(self) -> None:
        """SIGKILL the command's session. Idempotent."""
        if self._proc.returncode is None:
            _kill_group(self._proc.pid)

    async def resize(self, size: TerminalSize) -> None:
        """Nothing: the command has no terminal."""


async def start_exec(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    cgroup_procs: Sequence[Path],
    stdin: bool,
) -> ProcessExec:
    """Start ``command`` as a child in a session of its own, inside the given cgroups."""
    argv = ["/bin/sh", "-c", JOIN, "corral-exec", *map(str, cgroup_procs), "--", *command]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise ExecError(f"cannot start the command: {exc.strerror or exc}") from exc
    return ProcessExec(proc)
