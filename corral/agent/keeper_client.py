"""The agent's side of its task keeper (``corral.agent.keeper``): start it if none runs, ask it to
spawn and to watch tasks, and hear when they end.

One keeper serves one tasks directory; its abstract socket is named after that directory, so a
restarted agent finds the keeper its predecessor started.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

import orjson

from corral.agent.executors.base import LaunchError
from corral.agent.keeper import peer_uid


class KeeperGone(Exception):
    """The keeper could not be reached, or went away during a request."""


def keeper_name(tasks_dir: Path) -> str:
    """The abstract socket name of the keeper of ``tasks_dir``."""
    digest = hashlib.sha256(str(tasks_dir.absolute()).encode()).hexdigest()[:24]
    return f"corral-keeper-{digest}"


def _reap_when_done(pid: int) -> None:
    """Reap the keeper we started once it exits, so no zombie is left (it exits when idle)."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return

    def reap() -> None:
        loop.remove_reader(pidfd)
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        os.close(pidfd)

    loop.add_reader(pidfd, reap)


# The keeper's environment: enough to run Python and find corral; not the agent's secrets
# (its token), and tasks get an environment of their own anyway.
_KEEPER_ENV = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL", "HOME")


async def _start_keeper(name: str) -> None:
    """Start a keeper for ``name`` and return once it listens (or another one does)."""
    read, write = os.pipe2(os.O_CLOEXEC)
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        argv = [sys.executable, "-m", "corral.agent.keeper", name]
        pid = os.posix_spawn(
            sys.executable,
            argv,
            {key: os.environ[key] for key in _KEEPER_ENV if key in os.environ},
            file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, write, 1)],
            setsid=True,  # not in the agent's session: a signal to the agent's group spares it
        )
    finally:
        os.close(write)
        os.close(devnull)
    _reap_when_done(pid)
    try:
        said = await asyncio.to_thread(os.read, read, 64)
    finally:
        os.close(read)
    if said.strip() not in (b"ready", b"taken"):
        raise KeeperGone("the task keeper did not start")


async def _connected(name: str) -> socket.socket:
    """A socket connected to the abstract unix socket ``name``, for the loop's streams to take
    over: uvloop's ``open_unix_connection`` takes no abstract names (its path gets EINVAL)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, "\0" + name)
    except BaseException:
        sock.close()
        raise
    return sock


class KeeperClient:
    """A connection to the keeper of one tasks directory; reconnects (starting one) as needed."""

    def __init__(self, tasks_dir: Path) -> None:
        self.name = keeper_name(tasks_dir)
        self._lock = asyncio.Lock()  # connecting, and writing requests in order
        self._writer: asyncio.StreamWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the writer's
        self._reader_task: asyncio.Task[None] | None = None
        # Requests sent and not answered yet: the keeper answers in order, so several can be on
        # their way (a burst of launches does not wait a round trip per task).
        self._answers: collections.deque[asyncio.Future[dict[str, Any]]] = collections.deque()
        self._exits: dict[int, asyncio.Future[int | None]] = {}

    def exited(self, pid: int) -> asyncio.Future[int | None]:
        """Resolves with the task's exit status (shell encoding) once the keeper reaped it, or
        None if the keeper went away first."""
        future = self._exits.get(pid)
        if future is None:
            future = self._exits[pid] = asyncio.get_running_loop().create_future()
        return future

    def forget(self, pid: int) -> None:
        """Stop waiting for ``pid``'s end."""
        self._exits.pop(pid, None)

    async def spawn(self, request: dict[str, Any]) -> tuple[int, int]:
        """Have the keeper start a task; its pid and start time (clock ticks after boot).
        ``LaunchError`` with the keeper's reason if it could not, ``KeeperGone`` if the keeper
        could not be reached."""
        answer = await self._request({"op": "spawn", **request})
        if answer.get("op") != "spawned":
            raise LaunchError(f"cannot start the task: {answer.get('error', 'unknown error')}")
        pid = int(answer["pid"])
        self.exited(pid)  # from now on its end is kept for whoever asks
        return pid, int(answer["start"])

    async def watch(self, pid: int) -> bool:
        """Whether ``pid`` is a task the keeper started and has not reaped (then its end will be
        told); False for any other process."""
        answer = await self._request({"op": "watch", "pid": pid})
        return answer.get("op") == "watching"

    async def connect(self) -> None:
        """Connect now, starting a keeper if none runs. ``KeeperGone`` if it cannot."""
        try:
            async with self._lock:
                await self._connection()
        except (OSError, ConnectionError) as exc:
            raise KeeperGone(f"cannot reach the task keeper: {exc}") from exc

    async def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        try:
            async with self._lock:
                writer = await self._connection()
                self._answers.append(answer)
                writer.write(orjson.dumps(message) + b"\n")
            said = await answer
        except (OSError, ConnectionError) as exc:
            raise KeeperGone(f"the task keeper went away: {exc}") from exc
        return said

    async def _connection(self) -> asyncio.StreamWriter:
        loop = asyncio.get_running_loop()
        if self._writer is not None and not self._writer.is_closing() and self._loop is loop:
            return self._writer
        if self._loop is not loop:  # what waited belonged to a loop that has ended
            self._answers.clear()
            self._exits = {pid: f for pid, f in self._exits.items() if f.get_loop() is loop}
        try:
            sock = await _connected(self.name)
        except (ConnectionRefusedError, FileNotFoundError):
            await _start_keeper(self.name)
            try:
                sock = await _connected(self.name)
            except OSError as exc:
                raise KeeperGone(f"cannot reach the task keeper: {exc}") from exc
        # Whoever binds the name first holds it: a keeper of another user would be handed the
        # tasks' commands and environments.
        uid = peer_uid(sock)
        if uid != os.getuid():
            sock.close()
            raise KeeperGone(f"the task keeper's socket {self.name} is held by uid {uid}")
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        self._writer, self._loop = writer, loop
        self._reader_task = asyncio.create_task(self._read(reader, writer), name="task keeper")
        return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                message = orjson.loads(line)
                if message.get("op") == "exited":
                    future = self.exited(int(message["pid"]))
                    if not future.done():
                        future.set_result(message.get("code"))
                elif self._answers:
                    answer = self._answers.popleft()
                    if not answer.done():
                        answer.set_result(message)
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            # Gone: requests fail, and the tasks it kept are watched another way.
            self._writer = None
            writer.close()
            while self._answers:
                answer = self._answers.popleft()
                if not answer.done():
                    answer.set_exception(ConnectionError("connection closed"))
            for future in self._exits.values():
                if not future.done():
                    future.set_result(None)
            self._exits.clear()

    async def close(self) -> None:
        """Close the connection (the keeper goes on)."""
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
