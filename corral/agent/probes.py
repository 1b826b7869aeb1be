"""One health check of one task, once: HTTP(S), TCP or a command, with a verdict and a message.

Network checks go to 127.0.0.1 on the task's host port: for a process or host-network container
that is where it listens, for a bridge container where Docker publishes it. HTTP is a tiny
HTTP/1.0 client on asyncio streams: only the status line matters, and no thread is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache

from corral.agent.executors.base import CommandResult
from corral.spec.services import HealthCheckSpec

HOST = "127.0.0.1"
_STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})\b")
_MESSAGE_OUTPUT = 200  # characters of a failed command's output in the message


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict of one check, and what the user sees of it."""

    healthy: bool
    message: str


Probe = Callable[[HealthCheckSpec], Awaitable[CheckResult]]
CommandRunner = Callable[[str, float], Awaitable[CommandResult]]


@cache
def _insecure_tls() -> ssl.SSLContext:
    """TLS without verification: tasks serve self-signed certificates, as Marathon allows."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _close(writer: asyncio.StreamWriter, tls: bool) -> None:
    if tls:
        # No TLS goodbye: waiting for the task's close_notify is not the check's business.
        writer.transport.abort()
    else:
        writer.close()


async def _connect(port: int, tls: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if tls:
        return await asyncio.open_connection(HOST, port, ssl=_insecure_tls(), server_hostname="")
    return await asyncio.open_connection(HOST, port)


async def _status_line(port: int, path: str, tls: bool) -> bytes:
    """The first line of the answer to a GET of ``path`` (empty if none came)."""
    reader, writer = await _connect(port, tls)
    try:
        request = (
            f"GET {path} HTTP/1.0\r\nHost: {HOST}:{port}\r\n"
            "User-Agent: corral-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("utf-8", "surrogateescape"))
        await writer.drain()
        line = await reader.readline()
    finally:
        _close(writer, tls)
    if not tls:
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return line


def _failure(exc: OSError, port: int, what: str) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused on port {port}"
    return f"{what} failed: {exc.strerror or exc}"


async def check_http(
    port: int, path: str, timeout: float, *, tls: bool = False, ignore_1xx: bool = False
) -> CheckResult:
    """GET ``path`` on ``port``: 2xx and 3xx are healthy (1xx too with ``ignore_1xx``)."""
    where = f":{port}{path}"
    scheme = "HTTPS" if tls else "HTTP"
    try:
        async with asyncio.timeout(timeout):
            line = await _status_line(port, path, tls)
    except TimeoutError:
        return CheckResult(False, f"no {scheme} answer within {timeout:g}s from {where}")
    except OSError as exc:
        return CheckResult(False, _failure(exc, port, f"{scheme} GET {where}"))
    except ValueError:  # a first line longer than the stream's limit
        line = b"?"
    if not line:
        return CheckResult(False, f"connection closed without an answer from {where}")
    match = _STATUS_LINE.match(line)
    if match is None:
        return CheckResult(False, f"not an {scheme} answer from {where}")
    status = int(match[1])
    healthy = 200 <= status < 400 or (ignore_1xx and 100 <= status < 200)
    return CheckResult(healthy, f"{scheme} {status} from {where}")


async def check_tcp(port: int, timeout: float) -> CheckResult:
    """Healthy if a connection to ``port`` is accepted."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(HOST, port)
    except TimeoutError:
        return CheckResult(False, f"no connection within {timeout:g}s to port {port}")
    except OSError as exc:
        return CheckResult(False, _failure(exc, port, f"connecting to port {port}"))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return CheckResult(True, f"port {port} accepts connections")


async def check_command(run: CommandRunner, command: str, timeout: float) -> CheckResult:
    """Healthy if ``command`` exits 0; the message has the end of its output otherwise."""
    result = await run(command, timeout)
    if result.exit_code is None:
        return CheckResult(False, f"command {result.error or 'did not finish'}")
    if result.exit_code == 0:
        return CheckResult(True, "command exited with status 0")
    message = f"command exited with status {result.exit_code}"
    last_line = result.output.splitlines()[-1] if result.output else ""
    if last_line:
        message += f": {last_line[:_MESSAGE_OUTPUT]}"
    return CheckResult(False, message)


def check_port(check: HealthCheckSpec, ports: Sequence[int]) -> int | str:
    """The host port a network check goes to, or why there is none.

    ``check.port`` if given, else the task's host port number ``port_index`` (default 0).
    """
    if check.port is not None:
        return check.port
    index = check.port_index or 0
    if index >= len(ports):
        return f"the task has no host port {index} to check (it has {len(ports)})"
    return ports[index]


def task_probe(ports: Sequence[int], run_command: CommandRunner) -> Probe:
    """How to check one task: its host ports, and how to run a command where it runs."""

    async def probe(check: HealthCheckSpec) -> CheckResult:
        if check.protocol == "COMMAND":
            assert check.command is not None  # the spec makes sure
            return await check_command(run_command, check.command, check.timeout)
        port = check_port(check, ports)
        if isinstance(port, str):
            return CheckResult(False, port)
        if check.protocol == "TCP":
            return await check_tcp(port, check.timeout)
        return await check_http(
            port,
            check.path,
            check.timeout,
            tls=check.protocol == "HTTPS",
            ignore_1xx=check.ignore_http_1xx,
        )

    return probe
