"""Messages of commands run inside a running task (``corral exec``, and the remote shell a gang's
mpirun uses), on the agent channel beside ``corral.spec.protocol``.

The master opens an exec on the task's agent (``ExecOpen``), relays input to it (``ExecInput``)
and hears its output and end (``ExecOutput``, ``ExecExit``); either side may cancel
(``ExecCancel``); with a terminal (``tty``), the caller's window size follows as
``ExecResize``. An agent whose gang task asks for a remote shell sends ``RshOpen``; the master
runs the command as an exec on the gang's task on that host and relays the output and end back
with the same ``ExecOutput`` and ``ExecExit`` under the agent's ``exec_id`` (an agent never
receives those for an exec it runs, so the direction tells them apart). Bytes are base64 in
JSON.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Bytes of output or input in one frame: well inside the channel's 16 MiB frames once in base64.
EXEC_CHUNK = 64 * 1024
STDOUT, STDERR = 1, 2  # the stream numbers of ExecOutput, as Docker's and Kubernetes' exec
EOF_CHAR = b"\x04"  # the end of a caller's input, typed on a command's terminal (^D)


class TerminalSize(BaseModel):
    """A terminal's window, in characters (Kubernetes' ``TerminalSize``, and its JSON)."""

    model_config = ConfigDict(populate_by_name=True)

    width: int = Field(alias="Width", ge=1, le=0xFFFF)
    height: int = Field(alias="Height", ge=1, le=0xFFFF)


class ExecOpen(BaseModel):
    """Run ``command`` (argv) in the running task ``task_id``: its sandbox, environment and
    limits (the process driver's cgroup, the Docker driver's container)."""

    type: Literal["exec_open"] = "exec_open"
    exec_id: int
    task_id: str
    command: list[str] = Field(min_length=1)
    stdin: bool = False  # input follows as ExecInput; else the command reads /dev/null
    # A terminal for the command (its stdin, stdout and stderr; all output comes as stdout).
    tty: bool = False
    size: TerminalSize | None = None  # the terminal's window from the start, if known


class ExecInput(BaseModel):
    """Bytes for the command's stdin; ``eof`` closes it after them."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    type: Literal["exec_input"] = "exec_input"
    exec_id: int
    data: bytes = b""
    eof: bool = False


class ExecResize(BaseModel):
    """The caller's terminal has a new size: give it to the command's terminal (ignored
    without one)."""

    type: Literal["exec_resize"] = "exec_resize"
    exec_id: int
    size: TerminalSize


class ExecCancel(BaseModel):
    """Stop the command (its caller went away). Idempotent."""

    type: Literal["exec_cancel"] = "exec_cancel"
    exec_id: int


class ExecOutput(BaseModel):
    """Bytes the command wrote on ``stream`` (1 stdout, 2 stderr)."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    type: Literal["exec_output"] = "exec_output"
    exec_id: int
    stream: Literal[1, 2]
    data: bytes


class ExecExit(BaseModel):
    """The command ended with ``exit_code``; None with ``error`` when it could not run or was
    lost (its task ended, its agent went away)."""

    type: Literal["exec_exit"] = "exec_exit"
    exec_id: int
    exit_code: int | None = None
    error: str | None = None


class RshOpen(BaseModel):
    """A gang task's remote shell (mpirun's ``plm_rsh_agent``): run ``command`` with
    ``/bin/sh -c``, as ssh runs a remote command, in the same gang's task on ``host``.
    ``exec_id`` is the asking agent's own number for it."""

    type: Literal["rsh_open"] = "rsh_open"
    exec_id: int
    task_id: str  # the gang task that asks
    host: str
    command: str
