"""``corral exec``: run a command inside a running task, over a WebSocket (route ``task_exec``).

The caller's first message is JSON: ``{"command": [argv...], "stdin": bool, "tty": bool,
"size": {"Width": W, "Height": H}}`` (``tty`` and ``size`` optional: a terminal for the command,
and its window). Then, as in Kubernetes' exec channels, binary frames carry the streams, their
first byte saying which: the caller sends ``0`` + bytes for the command's stdin (and the text
``{"eof": true}`` to close it) and ``4`` + ``{"Width": W, "Height": H}`` when its terminal is
resized (ignored when malformed, as a terminal's size is only a hint); the master sends ``1`` +
bytes of stdout (all the output, on a terminal) and ``2`` + bytes of stderr, and last the text
``{"exit_code": N, "error": null}`` (``exit_code`` null with the ``error`` when the command
could not run or was lost), then closes. Refusals come the same way: ``{"exit_code": null,
"error": "...", "status": 404}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, ValidationError, field_validator

from corral.master.execs import Exec, ExecRefused
from corral.master.master import Master
from corral.spec import limits
from corral.spec.execs import EXEC_CHUNK, ExecExit, TerminalSize

router = APIRouter(prefix="/api/v1")
STDIN, RESIZE = 0, 4


class ExecRequest(BaseModel):
    """The first message of an exec."""

    command: list[str] = Field(min_length=1)
    stdin: bool = False
    tty: bool = False
    size: TerminalSize | None = None

    @field_validator("command")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        limits.argv(v)
        return v


@router.websocket("/tasks/{task_id}/exec", name="task_exec")
async def task_exec(ws: WebSocket, task_id: str) -> None:
    """Run a command in the task, streaming its input and output; the owner's debugging, with
    the same authorization as the task's logs."""
    master: Master = ws.app.state.master  # its rule in corral.api.authz: the task's owner
    await ws.accept()
    try:
        request = _request(await ws.receive_text())
        handle = await master.execs.open(
            task_id, request.command, request.stdin, request.tty, request.size
        )
    except (ExecRefused, ValueError) as e:
        status = e.status if isinstance(e, ExecRefused) else 422
        await _finish(ws, {"exit_code": None, "error": str(e), "status": status})
        return
    except WebSocketDisconnect:
        return
    feeder = asyncio.create_task(_feed(ws, master, handle))
    try:
        last = await _stream(ws, handle)
        await _finish(ws, {"exit_code": last.exit_code, "error": last.error})
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the caller went away
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        await master.execs.close(handle)


def _request(text: str) -> ExecRequest:
    """The first message, checked; ``ValueError`` naming the field otherwise."""
    try:
        return ExecRequest.model_validate_json(text)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ValueError(f"{where}: {first['msg']}") from None


async def _stream(ws: WebSocket, handle: Exec) -> ExecExit:
    """Send the exec's output to the caller; its last frame."""
    while True:
        frame = await handle.frames.get()
        if isinstance(frame, ExecExit):
            return frame
        handle.queued -= len(frame.data)
        await ws.send_bytes(bytes([frame.stream]) + frame.data)


async def _feed(ws: WebSocket, master: Master, handle: Exec) -> None:
    """Pass the caller's input on, until it closes it or goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                await master.execs.close(handle)
                return
            data = message.get("bytes")
            if data and data[0] == STDIN:
                for start in range(1, len(data), EXEC_CHUNK):
                    await master.execs.input(handle, data[start : start + EXEC_CHUNK])
            elif data and data[0] == RESIZE:
                with contextlib.suppress(ValidationError):
                    size = TerminalSize.model_validate_json(data[1:])
                    await master.execs.resize(handle, size)
            elif message.get("text") and _says_eof(message["text"]):
                await master.execs.input(handle, b"", eof=True)


def _says_eof(text: str) -> bool:
    try:
        said = json.loads(text)
    except ValueError:
        return False
    return isinstance(said, dict) and said.get("eof") is True


async def _finish(ws: WebSocket, last: dict[str, Any]) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await ws.send_text(json.dumps(last))
        await ws.close()
