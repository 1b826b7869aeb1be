"""Running a short shell command beside a process task (a COMMAND health check), bounded in time.

The command gets a session of its own, so that it and whatever it started can be killed as one
group: nothing it leaves behind outlives the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from corral.agent.executors.base import CommandResult

OUTPUT_LIMIT = 4096  # bytes of a command's output kept: its end says what went wrong


async def read_tail(stream: asyncio.StreamReader, limit: int = OUTPUT_LIMIT) -> bytes:
    """Read ``stream`` to its end, keeping only the last ``limit`` bytes."""
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[-limit:]
    return kept


def decode_tail(data: bytes) -> str:
    """Output as text for a message: decoded leniently, surrounding blank space removed."""
    return data.decode(errors="replace").strip()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def run_shell(
    command: str, *, env: Mapping[str, str], cwd: Path, timeout: float
) -> CommandResult:
    """Run ``/bin/sh -c command`` in ``cwd`` with exactly ``env``; at most ``timeout`` seconds."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(None, error=f"cannot run /bin/sh: {exc.strerror or exc}")
    assert proc.stdout is not None
    tail = asyncio.create_task(read_tail(proc.stdout))
    try:
        async with asyncio.timeout(timeout):
            code = await proc.wait()
            # What the command left running would hold the pipe open (and must not linger).
            _kill_group(proc.pid)
            output = await tail
    except TimeoutError:
        return CommandResult(None, error=f"did not finish within {timeout:g}s")
    finally:
        # Also on cancellation: kill and reap it, close the pipe.
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
        tail.cancel()
        await asyncio.gather(tail, return_exceptions=True)
    if code < 0:  # asyncio's way of saying "killed by signal -code"
        return CommandResult(128 - code, decode_tail(output))
    return CommandResult(code, decode_tail(output))
