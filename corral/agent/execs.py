"""Commands the master runs inside this agent's tasks (``corral exec``, a gang's remote shell):
started in the task through its executor, input passed on, output and end sent back.

An exec answers its ``ExecOpen`` with ``ExecOutput`` frames and one ``ExecExit``, always: also
when it cannot start, is cancelled, or its task ends (the task's execs are killed with it).
Input may arrive before the command has started; it waits in the session's queue, and a new
window size for its terminal (``ExecResize``) is kept until it has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from corral.agent.executors.base import ExecError, ExecStream, TaskHandle
from corral.spec.execs import (
    ExecCancel,
    ExecExit,
    ExecInput,
    ExecOpen,
    ExecOutput,
    ExecResize,
    TerminalSize,
)

log = logging.getLogger(__name__)

Send = Callable[[BaseModel], Awaitable[None]]
_EOF = b""  # in a session's input queue: close the command's input


@dataclass(eq=False)
class _Session:
    """One exec: its task, its input waiting to be written, the work that runs it."""

    task_id: str
    stdin: bool
    tty: bool = False
    size: TerminalSize | None = None  # of its terminal: the latest asked for
    input: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    stream: ExecStream | None = None
    cancelled: bool = False
    runner: asyncio.Task[None] | None = None


class ExecSessions:
    """The execs running on this agent, by the master's exec id."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._sessions: dict[int, _Session] = {}

    def open(self, msg: ExecOpen, handle: Coroutine[Any, Any, TaskHandle | None]) -> None:
        """Start ``msg.command`` in the task ``handle`` answers once it has started (None: it
        does not run here)."""
        if msg.exec_id in self._sessions:
            handle.close()
            return  # a repeat: the first one runs
        session = _Session(msg.task_id, msg.stdin, msg.tty, msg.size)
        self._sessions[msg.exec_id] = session
        session.runner = asyncio.get_running_loop().create_task(
            self._run(msg, session, handle), name=f"exec {msg.exec_id}"
        )

    def input(self, msg: ExecInput) -> None:
        """Input for an exec (dropped if it has ended, or takes none)."""
        session = self._sessions.get(msg.exec_id)
        if session is None or not session.stdin:
            return
        if msg.data:
            session.input.put_nowait(msg.data)
        if msg.eof:
            session.input.put_nowait(_EOF)

    async def resize(self, msg: ExecResize) -> None:
        """A new window size for an exec's terminal (kept until it has started)."""
        session = self._sessions.get(msg.exec_id)
        if session is None or not session.tty:
            return
        session.size = msg.size
        if session.stream is not None:
            await session.stream.resize(msg.size)

    async def cancel(self, msg: ExecCancel) -> None:
        """Stop an exec; its ``ExecExit`` still follows."""
        session = self._sessions.get(msg.exec_id)
        if session is not None:
            session.cancelled = True
            if session.stream is not None:
                await session.stream.kill()

    async def end_task(self, task_id: str) -> None:
        """The task has ended: its execs end too."""
        for exec_id, session in list(self._sessions.items()):
            if session.task_id == task_id:
                await self.cancel(ExecCancel(exec_id=exec_id))

    async def _run(
        self, msg: ExecOpen, session: _Session, started: Coroutine[Any, Any, TaskHandle | None]
    ) -> None:
        exec_id = msg.exec_id
        code: int | None = None
        error: str | None = None
        try:
            handle = await started
            if handle is None:
                raise ExecError(f"task {msg.task_id} is not running on this agent")
            size = session.size
            stream = await handle.exec(msg.command, msg.stdin, msg.tty, size)
            session.stream = stream
            if session.cancelled:
                await stream.kill()
            elif session.size is not None and session.size != size:
                await stream.resize(session.size)  # resized while it started
            writer = asyncio.create_task(self._write(session, stream)) if msg.stdin else None
            try:
                while (chunk := await stream.read()) is not None:
                    out = ExecOutput(
                        exec_id=exec_id, stream=1 if chunk[0] == 1 else 2, data=chunk[1]
                    )
                    await self._send(out)
                code = await stream.wait()
            finally:
                if writer is not None:
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await writer
            if code is None:
                error = "the command's exit status is not known"
        except ExecError as e:
            error = str(e)
        except Exception as e:  # a bug of ours: the master still hears the end
            log.exception("exec %d in task %s failed", exec_id, msg.task_id)
            error = f"the agent could not run it: {type(e).__name__}"
        finally:
            self._sessions.pop(exec_id, None)
        await self._send(ExecExit(exec_id=exec_id, exit_code=code, error=error))

    @staticmethod
    async def _write(session: _Session, stream: ExecStream) -> None:
        while (data := await session.input.get()) != _EOF:
            await stream.write(data)
        await stream.close_input()
