"""Running a command inside a running task (``corral exec``), over the master's WebSocket
``/api/v1/tasks/{task_id}/exec`` (see ``corral/api/task_exec.py`` for the frames).

``exec_task`` streams the caller's stdin to the command (from a thread, so the output is never
held up by it) and its stdout and stderr back, and answers how it ended; with ``tty`` the command
gets a terminal, whose window the caller may resize while it runs. Standard library and
``websockets`` only: the CLI imports it without the typed client's models.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from corral.client._http import Masters
from corral.client.config import ClientConfig
from corral.client.errors import ClientError
from corral.client.masters import master_urls

STDIN, STDOUT, STDERR, RESIZE = 0, 1, 2, 4
CHUNK = 64 * 1024
Resize = Callable[[int, int], None]  # give the command's terminal a new (width, height)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """How an exec ended: the command's exit code, or why there is none (``error``, with the
    HTTP ``status`` that says it best when the master refused the exec)."""

    exit_code: int | None
    error: str | None = None
    status: int | None = None


def exec_url(base: str, task_id: str) -> str:
    """The exec WebSocket of a task, for a master at ``http(s)://host:port``."""
    base = base.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return f"{base}/api/v1/tasks/{quote(task_id, safe='')}/exec"


def leader_of(url: str) -> str:
    """Where the leader of the masters at ``url`` (one, or several separated by commas)
    answers, by the first that does (``/health``): an exec's WebSocket must reach the leader,
    as no master hands one on."""
    if "," not in url:
        return url.rstrip("/")
    masters = Masters(url, {}, timeout=5.0)
    try:
        answer = masters.request("GET", "/health")
        leader = answer.json().get("leader") if not answer.is_error else None
    except (ClientError, ValueError):
        leader = None
    finally:
        masters.close()
    return str(leader) if leader else master_urls(url)[0]


def exec_task(
    config: ClientConfig,
    task_id: str,
    command: list[str],
    *,
    stdin: BinaryIO | None,
    stdout: BinaryIO,
    stderr: BinaryIO,
    tty: bool = False,
    size: tuple[int, int] | None = None,
    on_open: Callable[[Resize], None] | None = None,
) -> ExecResult:
    """Run ``command`` in the task, ``stdin`` (None: no input) streamed to it, its output
    written to ``stdout`` and ``stderr`` as it comes. With ``tty`` it runs on a terminal of
    window ``size`` (width, height), all its output on ``stdout``; ``on_open`` is given, once
    the exec is open, the function that resizes that window. ``ClientError`` when the master
    cannot be reached or refuses the token."""
    headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
    url = leader_of(config.url)
    try:
        ws = connect(exec_url(url, task_id), additional_headers=headers, max_size=2**24)
    except InvalidStatus as e:
        raise ClientError(f"the master refused the exec: HTTP {e.response.status_code}") from None
    except (OSError, InvalidURI, TimeoutError) as e:
        raise ClientError(f"cannot reach the master at {url}: {e}") from None
    with ws:
        request: dict[str, object] = {"command": command, "stdin": stdin is not None, "tty": tty}
        if size is not None:
            request["size"] = {"Width": size[0], "Height": size[1]}
        ws.send(json.dumps(request))
        if on_open is not None:
            on_open(lambda width, height: _resize(ws, width, height))
        if stdin is not None:
            threading.Thread(target=_feed, args=(ws, stdin), daemon=True).start()
        return _receive(ws, stdout, stderr)


def _resize(ws: ClientConnection, width: int, height: int) -> None:
    """Say the caller's terminal has a new size (Kubernetes' resize channel)."""
    with contextlib.suppress(ConnectionClosed, OSError):
        ws.send(bytes([RESIZE]) + json.dumps({"Width": width, "Height": height}).encode())


def _feed(ws: ClientConnection, stdin: BinaryIO) -> None:
    """Send the caller's input, then say it has ended."""
    try:
        while data := stdin.read1(CHUNK) if hasattr(stdin, "read1") else stdin.read(CHUNK):
            ws.send(bytes([STDIN]) + data)
        ws.send(json.dumps({"eof": True}))
    except (ConnectionClosed, OSError, ValueError):
        pass  # the exec has ended (or the input was closed under us)


def _receive(ws: ClientConnection, stdout: BinaryIO, stderr: BinaryIO) -> ExecResult:
    """Write the output as it comes; the end the master says."""
    try:
        for message in ws:
            if isinstance(message, bytes):
                out = stderr if message[:1] == bytes([STDERR]) else stdout
                out.write(message[1:])
                out.flush()
                continue
            last = json.loads(message)
            return ExecResult(last.get("exit_code"), last.get("error"), last.get("status"))
    except ConnectionClosed as e:
        if e.rcvd is not None and e.rcvd.code in (4401, 4403, 1013):
            raise ClientError(f"the master refused the exec: {e.rcvd.reason}") from None
    return ExecResult(None, "the connection to the master ended before the command did")
