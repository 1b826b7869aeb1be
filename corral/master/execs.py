"""Commands run inside running tasks, relayed by the master: ``corral exec`` (the API's
WebSocket) and a gang rank's remote shell (an agent's ``RshOpen``, mpirun starting its daemons
in the gang's other tasks, as the MPI operator does with ``kubectl exec``).

The master opens the exec on the task's agent over the agent channel and hands the caller the
frames the agent sends back (``ExecOutput``, then one ``ExecExit``) through a queue of its own,
so that a slow caller never holds up the agent channel; one whose queue grows past
``MAX_QUEUED`` bytes has its exec cancelled. Every exec ends with an ``ExecExit``: the agent's,
or the master's when the agent goes away.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from corral.master.dispatch import Dispatcher
from corral.master.gangs import member_of, rsh_target
from corral.master.state import ClusterState
from corral.spec.execs import (
    ExecCancel,
    ExecExit,
    ExecInput,
    ExecOpen,
    ExecOutput,
    ExecResize,
    RshOpen,
    TerminalSize,
)
from corral.spec.states import TaskState

log = logging.getLogger(__name__)

MAX_QUEUED = 16 * 1024 * 1024  # bytes of output waiting for a slow caller before it is cut off
Frame = ExecOutput | ExecExit


class ExecRefused(Exception):
    """The exec cannot be opened; ``status`` is the HTTP status that says why best."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(eq=False)
class Exec:
    """One open exec: the caller reads its frames from ``frames``."""

    exec_id: int
    agent_id: str
    task_id: str
    frames: asyncio.Queue[Frame] = field(default_factory=asyncio.Queue)
    queued: int = 0  # bytes of output in ``frames``
    ended: bool = False  # its ExecExit is in ``frames``


class ExecRelay:
    """The open execs, by exec id; an agent's frames go to the exec's caller."""

    def __init__(
        self, state: ClusterState, dispatch: Dispatcher, hostname_of: Callable[[str], str | None]
    ) -> None:
        self.state = state
        self.dispatch = dispatch
        self.hostname_of = hostname_of
        self._open: dict[int, Exec] = {}
        self._ids = itertools.count(1)
        self._relays: dict[tuple[str, int], Exec] = {}  # remote shells: (asking agent, its id)
        self._pumps: set[asyncio.Task[None]] = set()

    async def open(
        self,
        task_id: str,
        command: list[str],
        stdin: bool,
        tty: bool = False,
        size: TerminalSize | None = None,
    ) -> Exec:
        """Run ``command`` in the task ``task_id``, placed and not ended (on a terminal of
        window ``size`` with ``tty``); ``ExecRefused`` otherwise. A task still starting runs it
        once it has started."""
        task = self.state.tasks.get(task_id)
        if task is None:
            # The store is read off the event loop, as every store call (a network database
            # may be slow to answer).
            if await asyncio.to_thread(self.state.store.task, task_id) is None:
                raise ExecRefused(404, f"task {task_id!r} not found")
            raise ExecRefused(409, f"task {task_id} has ended")
        if task.state is TaskState.PENDING or task.agent_id is None:
            why = task.waiting or "pending"
            raise ExecRefused(409, f"task {task_id} is not placed yet: {why}")
        if task.kill_requested:
            raise ExecRefused(409, f"task {task_id} is being stopped")
        if self.dispatch.session_of(task.agent_id) is None:
            host = self.hostname_of(task.agent_id) or task.agent_id
            raise ExecRefused(503, f"agent {host} of task {task_id} is not connected")
        handle = Exec(next(self._ids), task.agent_id, task_id)
        self._open[handle.exec_id] = handle
        message = ExecOpen(
            exec_id=handle.exec_id,
            task_id=task_id,
            command=command,
            stdin=stdin,
            tty=tty,
            size=size,
        )
        await self.dispatch.send(task.agent_id, message.model_dump(mode="json"))
        return handle

    async def input(self, handle: Exec, data: bytes, eof: bool = False) -> None:
        """Input for the command (with ``eof``: then close its input)."""
        if not handle.ended:
            message = ExecInput(exec_id=handle.exec_id, data=data, eof=eof)
            await self.dispatch.send(handle.agent_id, message.model_dump(mode="json"))

    async def resize(self, handle: Exec, size: TerminalSize) -> None:
        """A new window size for the command's terminal."""
        if not handle.ended:
            message = ExecResize(exec_id=handle.exec_id, size=size)
            await self.dispatch.send(handle.agent_id, message.model_dump(mode="json"))

    async def close(self, handle: Exec) -> None:
        """The caller is done: cancel the command if it still runs. Idempotent."""
        if handle.ended:
            return
        self._end(handle, ExecExit(exec_id=handle.exec_id, error="cancelled"))
        cancel = ExecCancel(exec_id=handle.exec_id)
        await self.dispatch.send(handle.agent_id, cancel.model_dump(mode="json"))

    # --- what agents say

    def output(self, agent_id: str, msg: ExecOutput) -> None:
        """Output of an exec, from the agent it runs on."""
        handle = self._open.get(msg.exec_id)
        if handle is None or handle.agent_id != agent_id or handle.ended:
            return
        handle.queued += len(msg.data)
        if handle.queued <= MAX_QUEUED:
            handle.frames.put_nowait(msg)
            return
        self._end(handle, ExecExit(exec_id=msg.exec_id, error="the caller reads too slowly"))
        cancel = ExecCancel(exec_id=msg.exec_id).model_dump(mode="json")
        self._spawn(self.dispatch.send(agent_id, cancel))

    def exited(self, agent_id: str, msg: ExecExit) -> None:
        """The end of an exec, from the agent it ran on."""
        handle = self._open.get(msg.exec_id)
        if handle is not None and handle.agent_id == agent_id:
            self._end(handle, msg)

    def agent_gone(self, agent_id: str) -> None:
        """An agent's connection ended: its execs end, and the remote shells it asked for."""
        for handle in list(self._open.values()):
            if handle.agent_id == agent_id:
                error = "the task's agent went away"
                self._end(handle, ExecExit(exec_id=handle.exec_id, error=error))
        for key in [key for key in self._relays if key[0] == agent_id]:
            self._spawn(self.close(self._relays.pop(key)))

    def _end(self, handle: Exec, last: ExecExit) -> None:
        handle.ended = True
        self._open.pop(handle.exec_id, None)
        handle.frames.put_nowait(last)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)

    # --- remote shells of gang ranks

    async def rsh_open(self, agent_id: str, msg: RshOpen) -> None:
        """Run a gang rank's remote shell command in the gang's task on ``msg.host``; its
        frames go back to the asking agent under the agent's own exec id."""
        asking = self.state.tasks.get(msg.task_id)
        target = None
        if asking is None or asking.agent_id != agent_id or member_of(asking) is None:
            error = f"task {msg.task_id} is no running rank of a gang on this agent"
        else:
            live = self.state.index.of_job(asking.job)
            target = rsh_target(asking, live, msg.host, self.hostname_of)
            error = f"no rank of the gang of {msg.task_id} runs on {msg.host}"
        handle = None
        if target is not None:
            try:
                handle = await self.open(target.id, ["/bin/sh", "-c", msg.command], stdin=False)
            except ExecRefused as e:
                error = str(e)
        if handle is None:
            answer = ExecExit(exec_id=msg.exec_id, error=error)
            await self.dispatch.send(agent_id, answer.model_dump(mode="json"))
            return
        self._relays[(agent_id, msg.exec_id)] = handle
        self._spawn(self._relay(agent_id, msg.exec_id, handle))

    async def rsh_cancel(self, agent_id: str, msg: ExecCancel) -> None:
        """The asking agent gave up a remote shell (its task ended)."""
        handle = self._relays.pop((agent_id, msg.exec_id), None)
        if handle is not None:
            await self.close(handle)

    async def _relay(self, agent_id: str, exec_id: int, handle: Exec) -> None:
        """Pass an exec's frames to the agent whose remote shell asked for it."""
        while True:
            frame = await handle.frames.get()
            answer = frame.model_copy(update={"exec_id": exec_id})
            await self.dispatch.send(agent_id, answer.model_dump(mode="json"))
            if isinstance(frame, ExecExit):
                break
            handle.queued -= len(frame.data)
        self._relays.pop((agent_id, exec_id), None)
