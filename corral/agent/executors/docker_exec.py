"""Running a short shell command inside a task's container (a COMMAND health check).

Docker's exec inherits the container's environment and working directory, so the command sees
what the task sees. Docker has no way to kill an exec, so one that overruns is abandoned (its
stream closed); it ends with the container at the latest.
"""

from __future__ import annotations

import asyncio

import aiodocker
import aiohttp

from corral.agent.commands import OUTPUT_LIMIT, decode_tail
from corral.agent.executors.base import CommandResult

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
