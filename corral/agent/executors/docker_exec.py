"""Running commands inside a task's container: a short shell command (a COMMAND health check),
and an attached command with its input and output streamed (``corral exec``, a gang's remote
shell), on a terminal of Docker's if asked (``-t``).

Docker's exec inherits the container's environment and working directory, so the command sees
what the task sees. Docker has no way to kill an exec, so one that overruns is abandoned (its
stream closed); it ends with the container at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import aiodocker
import aiohttp
from aiodocker.execs import Exec
from aiodocker.stream import Stream

from corral.agent.commands import OUTPUT_LIMIT, decode_tail
from corral.agent.executors.base import CommandResult, ExecError
from corral.spec.execs import EOF_CHAR, STDERR, STDOUT, TerminalSize

DOCKER_ERRORS = (aiodocker.DockerError, aiohttp.ClientError, asyncio.IncompleteReadError)
_EXIT_POLL = 0.02  # seconds between looks at an exec whose output ended but status is not in


def error_text(exc: BaseException) -> str:
    """What went wrong, in Docker's words where it gave some."""
    if isinstance(exc, aiodocker.DockerError):
        return exc.message.strip()
    return str(exc) or type(exc).__name__


async def exec_shell(
    docker: aiodocker.Docker, container_id: str, command: str, timeout: float
) -> CommandResult:
    """Run ``/bin/sh -c command`` in the running container; at most ``timeout`` seconds."""
    container = docker.containers.container(container_id)
    try:
        async with asyncio.timeout(timeout):
            execution = await container.exec(["/bin/sh", "-c", command])
            kept = b""
            async with execution.start(detach=False) as stream:
                while (message := await stream.read_out()) is not None:
                    kept = (kept + message.data)[-OUTPUT_LIMIT:]
            info = await execution.inspect()
            # The output can end a moment before Docker has noted the exit status; it has no
            # event for that, so look again shortly.
            while info.get("Running"):
                await asyncio.sleep(_EXIT_POLL)
                info = await execution.inspect()
    except TimeoutError:
        return CommandResult(None, error=f"did not finish within {timeout:g}s")
    except DOCKER_ERRORS as exc:
        return CommandResult(None, error=f"docker: {error_text(exc)}")
    code = info.get("ExitCode")
    if not isinstance(code, int):
        return CommandResult(None, decode_tail(kept), error="docker gave no exit status")
    return CommandResult(code, decode_tail(kept))


class DockerExec:
    """A command started in a container by :func:`open_exec` (Docker's exec, attached)."""

    def __init__(
        self, docker: aiodocker.Docker, execution: Exec, stream: Stream, tty: bool = False
    ) -> None:
        self._docker = docker
        self._exec = execution
        self._stream = stream
        self._tty = tty
        self._input_closed = False

    async def write(self, data: bytes) -> None:
        """Give the command input; dropped once the stream is gone."""
        with contextlib.suppress(*DOCKER_ERRORS, RuntimeError, ConnectionError):
            await self._stream.write_in(data)

    async def close_input(self) -> None:
        """End the command's input: half-close the attached connection, as ``docker exec -i``
        does at the end of its stdin (aiodocker's own close would end the output too); on a
        terminal, type its end of input (^D), as the process driver does."""
        if self._input_closed:
            return
        self._input_closed = True
        if self._tty:
            await self.write(EOF_CHAR)
            return
        response = getattr(self._stream, "_resp", None)
        connection = getattr(response, "connection", None)
        transport = getattr(connection, "transport", None)
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    async def read(self) -> tuple[int, bytes] | None:
        """The next piece of output; None once the command's output has ended."""
        try:
            message = await self._stream.read_out()
        except DOCKER_ERRORS:
            return None
        if message is None:
            return None
        return (STDERR if message.stream == 2 else STDOUT), message.data

    async def wait(self) -> int | None:
        """The command's exit status, from Docker once it has noted it."""
        try:
            info = await self._exec.inspect()
            # The output can end a moment before Docker has noted the exit status.
            while info.get("Running"):
                await asyncio.sleep(_EXIT_POLL)
                info = await self._exec.inspect()
        except DOCKER_ERRORS:
            return None
        finally:
            await self._stream.close()
        code = info.get("ExitCode")
        return code if isinstance(code, int) else None

    async def resize(self, size: TerminalSize) -> None:
        """Give the command's terminal a new window size (``docker exec -t``'s resize)."""
        if self._tty:
            with contextlib.suppress(*DOCKER_ERRORS):
                await self._exec.resize(h=size.height, w=size.width)

    async def kill(self) -> None:
        """Docker cannot stop an exec: SIGKILL its process where the agent sees it (an agent
        in the host's process namespace), and close the stream."""
        with contextlib.suppress(*DOCKER_ERRORS):
            pid = (await self._exec.inspect()).get("Pid")
            if isinstance(pid, int) and pid > 0:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        await self._stream.close()


async def open_exec(
    docker: aiodocker.Docker,
    container_id: str,
    command: list[str],
    stdin: bool,
    tty: bool = False,
    size: TerminalSize | None = None,
) -> DockerExec:
    """Start ``command`` in the running container, attached (``docker exec [-i] [-t]``); a
    terminal's window ``size`` is given once it runs (the Engine API takes none before)."""
    container = docker.containers.container(container_id)
    try:
        execution = await container.exec(command, stdin=stdin, tty=tty)
        stream = execution.start(detach=False)
        await stream.__aenter__()  # connect now, so that a refusal is an error here
    except DOCKER_ERRORS as exc:
        raise ExecError(f"docker: {error_text(exc)}") from exc
    started = DockerExec(docker, execution, stream, tty)
    if size is not None:
        await started.resize(size)
    return started
