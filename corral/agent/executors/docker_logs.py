"""Copying a container's stdout and stderr into the task's sandbox, from Docker's raw log stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiodocker
import aiohttp

_FRAME_HEADER = struct.Struct(">BxxxL")
STREAM_FILES = {1: "stdout", 2: "stderr"}


@asynccontextmanager
async def _log_stream(
    docker: aiodocker.Docker, container_id: str, follow: bool
) -> AsyncIterator[aiohttp.StreamReader]:
    """The raw multiplexed log stream of a container.

    aiodocker's ``log()`` yields text (dropping bytes that are not UTF-8) without saying which
    stream it came from, so this asks the same session for the frames themselves.
    """
    url = f"{docker.docker_host}/containers/{container_id}/logs"
    params = {"stdout": "1", "stderr": "1", "follow": "1" if follow else "0"}
    timeout = aiohttp.ClientTimeout()  # none: following lasts as long as the container
    async with docker.session.get(url, params=params, timeout=timeout) as response:
        if response.status != 200:
            body = await response.text()
            with contextlib.suppress(ValueError, AttributeError):
                body = json.loads(body).get("message", body)
            raise aiodocker.DockerError(response.status, body)
        yield response.content


class LogCopier:
    """Appends a container's stdout and stderr to the sandbox files, each byte once."""

    def __init__(self, docker: aiodocker.Docker, container_id: str, sandbox_dir: Path) -> None:
        """``sandbox_dir`` may hold output copied by an earlier agent: that part is skipped."""
        self._docker = docker
        self._container_id = container_id
        self._paths = {kind: sandbox_dir / name for kind, name in STREAM_FILES.items()}
        self._written = {kind: _size(path) for kind, path in self._paths.items()}

    async def copy(self, follow: bool) -> None:
        """Copy what is new; with ``follow``, go on until the container has stopped.

        Raises Docker's and the connection's errors.
        """
        seen = dict.fromkeys(self._paths, 0)
        files = {kind: path.open("ab", buffering=0) for kind, path in self._paths.items()}
        try:
            async with _log_stream(self._docker, self._container_id, follow) as stream:
                while (frame := await _read_frame(stream)) is not None:
                    kind, data = frame
                    if kind not in files:
                        continue
                    start = self._written[kind] - seen[kind]  # how much of it is copied already
                    seen[kind] += len(data)
                    if start < len(data):
                        files[kind].write(data[max(start, 0) :])
                        self._written[kind] = seen[kind]
        finally:
            for file in files.values():
                file.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def _read_frame(stream: aiohttp.StreamReader) -> tuple[int, bytes] | None:
    """The next (stream id, payload) of a log stream, None at its end."""
    try:
        header = await stream.readexactly(_FRAME_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    kind, length = _FRAME_HEADER.unpack(header)
    return kind, await stream.readexactly(length)
