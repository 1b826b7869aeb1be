"""The agent's side of a gang's remote shell (``.corral/rsh``, see ``corral/agent/gangs.py``).

For each running rank of a gang the agent reads request ids from the FIFO ``.corral/requests``;
for each it reads ``ID.cmd`` (the host, then the command), opens the FIFOs ``ID.out``,
``ID.err`` and ``ID.status`` the script reads, and asks the master to run the command in the
gang's task on that host (``RshOpen``, under an exec id of its own). The master's
``ExecOutput`` and ``ExecExit`` for that id are written to the FIFOs: output, then the exit
status. When the asking task ends, its remote shells are cancelled.

The sandbox is the task's: it may put links or other files where the FIFOs should be. So every
name is opened relative to the directory without following a link, FIFOs only are written and
regular files only read; an id is a number, a request has a size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from corral.agent import sandbox_files
from corral.agent.gangs import REQUESTS
from corral.spec.execs import STDERR, ExecCancel, ExecExit, ExecOutput, RshOpen

log = logging.getLogger(__name__)

MAX_REQUEST = 1024 * 1024  # bytes of a request's host and command
MAX_OPEN = 256  # remote shells of one task at a time
OPEN_TRIES = 500  # the script opens its readers just before asking: wait up to ~5 s for them
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC

Send = Callable[[BaseModel], Awaitable[None]]


class _Refused(Exception):
    """A request that cannot be answered; the message says why (for the agent's log)."""


def _fifo_fd(directory: Path, name: str, flags: int) -> int:
    """An open descriptor of the FIFO ``name`` in ``directory``, no link followed."""
    dirfd = os.open(directory, _DIR_FLAGS)
    try:
        fd = os.open(name, flags, dir_fd=dirfd)
    finally:
        os.close(dirfd)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Refused(f"{name} is not a FIFO")
    return fd


async def _open_writer(directory: Path, name: str) -> asyncio.WriteTransport:
    """A transport writing to the FIFO ``name``, once its reader has opened it."""
    loop = asyncio.get_running_loop()
    for _ in range(OPEN_TRIES):
        try:
            fd = _fifo_fd(directory, name, _WRITE_FLAGS)
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise _Refused(f"cannot open {name}: {e.strerror}") from None
            await asyncio.sleep(0.01)
            continue
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(fd, "wb", 0))
        return transport
    raise _Refused(f"nobody reads {name}")


@dataclass(eq=False)
class _Relay:
    """One remote shell: where its answer goes."""

    task_id: str
    out: asyncio.WriteTransport
    err: asyncio.WriteTransport
    status: asyncio.WriteTransport

    def finish(self, code: int | None, error: str | None) -> None:
        if error:
            _write(self.err, f"corral rsh: {error}\n".encode())
        self.out.close()
        self.err.close()
        _write(self.status, f"{255 if code is None else code}\n".encode())
        self.status.close()


def _write(fifo: asyncio.WriteTransport, data: bytes) -> None:
    """Write to a FIFO of a remote shell, unless its reader has gone (the transport closed
    itself then; uvloop raises where asyncio's own transport drops what is written)."""
    if not fifo.is_closing():
        fifo.write(data)


@dataclass(eq=False)
class _Watch:
    """A task's request FIFO being read."""

    task_id: str
    directory: Path
    fd: int
    buffer: bytes = b""
    opening: set[asyncio.Task[None]] = field(default_factory=set)


class RshRelays:
    """The remote shells of this agent's gang ranks, relayed to the master."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._watches: dict[str, _Watch] = {}
        self._relays: dict[int, _Relay] = {}
        self._ids = itertools.count(1)

    def watch(self, task_id: str, directory: Path) -> None:
        """Answer the remote shell requests of ``task_id`` (its ``.corral`` is ``directory``)."""
        if task_id in self._watches:
            return
        try:
            # Read and write: the agent's own writer keeps the FIFO from ever reading as ended.
            fd = _fifo_fd(directory, REQUESTS, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW)
        except (OSError, _Refused) as e:
            log.warning("task %s: its remote shell cannot be answered: %s", task_id, e)
            return
        watch = _Watch(task_id, directory, fd)
        self._watches[task_id] = watch
        asyncio.get_running_loop().add_reader(fd, self._readable, watch)

    async def unwatch(self, task_id: str) -> None:
        """The task has ended: stop answering it, and end its remote shells (cancelled)."""
        watch = self._watches.pop(task_id, None)
        if watch is not None:
            asyncio.get_running_loop().remove_reader(watch.fd)
            os.close(watch.fd)
            for opening in list(watch.opening):
                opening.cancel()
        for exec_id, relay in list(self._relays.items()):
            if relay.task_id == task_id:
                del self._relays[exec_id]
                relay.finish(None, "the task ended")
                await self._send(ExecCancel(exec_id=exec_id))

    async def output(self, msg: ExecOutput) -> None:
        """Output of one of our remote shells."""
        relay = self._relays.get(msg.exec_id)
        if relay is not None:
            _write(relay.err if msg.stream == STDERR else relay.out, msg.data)

    async def exited(self, msg: ExecExit) -> None:
        """The end of one of our remote shells."""
        relay = self._relays.pop(msg.exec_id, None)
        if relay is not None:
            relay.finish(msg.exit_code, msg.error)

    def _readable(self, watch: _Watch) -> None:
        try:
            data = os.read(watch.fd, 4096)
        except BlockingIOError:
            return
        lines = (watch.buffer + data).split(b"\n")
        watch.buffer = lines.pop()[-64:]  # an id is short: what never ends is not kept
        for line in lines:
            if line.strip().isdigit() and len(watch.opening) < MAX_OPEN:
                task = asyncio.get_running_loop().create_task(self._open(watch, line.strip()))
                watch.opening.add(task)
                task.add_done_callback(watch.opening.discard)

    async def _open(self, watch: _Watch, request: bytes) -> None:
        name = request.decode()
        opened: list[asyncio.WriteTransport] = []
        try:
            for stream in ("out", "err", "status"):
                opened.append(await _open_writer(watch.directory, f"{name}.{stream}"))
        except _Refused as e:
            for transport in opened:
                transport.close()
            log.warning("task %s: remote shell %s cannot be answered: %s", watch.task_id, name, e)
            return
        relay = _Relay(watch.task_id, *opened)
        try:
            host, command = _read_request(watch.directory, f"{name}.cmd")
        except _Refused as e:
            relay.finish(None, str(e))
            return
        exec_id = next(self._ids)
        self._relays[exec_id] = relay
        opening = RshOpen(exec_id=exec_id, task_id=watch.task_id, host=host, command=command)
        await self._send(opening)


def _read_request(directory: Path, name: str) -> tuple[str, str]:
    """The host and command of a request file."""
    try:
        fd = sandbox_files.open_regular(directory, name)
    except sandbox_files.FileRefused as e:
        raise _Refused(str(e)) from None
    with contextlib.closing(os.fdopen(fd, "rb")) as f:
        data = f.read(MAX_REQUEST + 1)
    if len(data) > MAX_REQUEST:
        raise _Refused(f"{name} is over {MAX_REQUEST} bytes")
    host, _, command = data.decode(errors="replace").partition("\n")
    if not host or not command:
        raise _Refused(f"{name} names no host or no command")
    return host, command
