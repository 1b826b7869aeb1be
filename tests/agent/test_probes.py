"""Single health checks against small servers of the test's own: HTTP(S), TCP, commands."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from corral.agent.executors.base import CommandResult
from corral.agent.probes import (
    CheckResult,
    check_command,
    check_http,
    check_port,
    check_tcp,
    task_probe,
)
from corral.spec.services import HealthCheckSpec
from tests.agent.helpers import refusing_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A server on a free port of 127.0.0.1: its port, and the requests' first lines."""
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            requests.append(await reader.readline())
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1], requests
    finally:
        server.close()
        await server.wait_closed()


def answer(status_line: str) -> Handler:
    """A handler answering every request with ``status_line`` and an empty body."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{status_line}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()

    return handler


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never answer (until the check gives up and closes)."""
    await reader.read()


async def http(status_line: str, path: str = "/health", **options: Any) -> tuple[int, CheckResult]:
    """The port of a server answering ``status_line``, and what a check of ``path`` says."""
    async with serving(answer(status_line)) as (port, requests):
        result = await check_http(port, path, 2.0, **options)
    assert requests == [f"GET {path} HTTP/1.0\r\n".encode()]
    return port, result


@pytest.mark.parametrize("status", [200, 204, 301, 302, 399])
def test_http_2xx_and_3xx_are_healthy(status: int) -> None:
    port, result = asyncio.run(http(f"HTTP/1.1 {status} Whatever"))
    assert result == CheckResult(True, f"HTTP {status} from :{port}/health")


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_http_4xx_and_5xx_are_unhealthy(status: int) -> None:
    port, result = asyncio.run(http(f"HTTP/1.0 {status} Bad"))
    assert result == CheckResult(False, f"HTTP {status} from :{port}/health")


def test_http_1xx_is_unhealthy_unless_ignored() -> None:
    port, result = asyncio.run(http("HTTP/1.1 102 Processing"))
    assert result == CheckResult(False, f"HTTP 102 from :{port}/health")
    port, result = asyncio.run(http("HTTP/1.1 102 Processing", ignore_1xx=True))
    assert result == CheckResult(True, f"HTTP 102 from :{port}/health")


def test_http_to_a_port_nobody_listens_on_is_refused() -> None:
    with refusing_port() as sock:
        port = sock.getsockname()[1]
        result = asyncio.run(check_http(port, "/", 2.0))
    assert result == CheckResult(False, f"connection refused on port {port}")


def test_http_without_an_answer_in_time_is_unhealthy() -> None:
    async def scenario() -> tuple[int, CheckResult]:
        async with serving(silent) as (port, _):
            return port, await check_http(port, "/", 0.2)

    port, result = asyncio.run(scenario())
    assert result == CheckResult(False, f"no HTTP answer within 0.2s from :{port}/")


def test_an_answer_that_is_not_http_is_unhealthy() -> None:
    async def scenario() -> tuple[int, CheckResult]:
        async with serving(answer("SSH-2.0-OpenSSH")) as (port, _):
            return port, await check_http(port, "/", 2.0)

    port, result = asyncio.run(scenario())
    assert result == CheckResult(False, f"not an HTTP answer from :{port}/")


def test_a_connection_closed_without_an_answer_is_unhealthy() -> None:
    async def closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return None

    async def scenario() -> tuple[int, CheckResult]:
        async with serving(closes) as (port, _):
            return port, await check_http(port, "/", 2.0)

    port, result = asyncio.run(scenario())
    assert result == CheckResult(False, f"connection closed without an answer from :{port}/")


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=task.example", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_https_accepts_a_self_signed_certificate(self_signed: ssl.SSLContext) -> None:
    async def scenario() -> tuple[int, CheckResult]:
        async with serving(answer("HTTP/1.1 200 OK"), tls=self_signed) as (port, _):
            return port, await check_http(port, "/ping", 2.0, tls=True)

    port, result = asyncio.run(scenario())
    assert result == CheckResult(True, f"HTTPS 200 from :{port}/ping")


def test_tcp_is_healthy_when_the_port_accepts_and_unhealthy_when_refused() -> None:
    async def scenario() -> tuple[int, CheckResult]:
        async with serving(silent) as (port, _):
            return port, await check_tcp(port, 2.0)

    port, result = asyncio.run(scenario())
    assert result == CheckResult(True, f"port {port} accepts connections")
    with refusing_port() as sock:
        refused = sock.getsockname()[1]
        result = asyncio.run(check_tcp(refused, 2.0))
    assert result == CheckResult(False, f"connection refused on port {refused}")


# --- commands and ports


def runner(result: CommandResult) -> Callable[[str, float], Awaitable[CommandResult]]:
    """A command runner that answers ``result`` for any command."""

    async def run(command: str, timeout: float) -> CommandResult:
        return result

    return run


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (CommandResult(0, "fine"), CheckResult(True, "command exited with status 0")),
        (CommandResult(1), CheckResult(False, "command exited with status 1")),
        (
            CommandResult(2, "starting\nno database\n"),
            CheckResult(False, "command exited with status 2: no database"),
        ),
        (
            CommandResult(None, error="did not finish within 1s"),
            CheckResult(False, "command did not finish within 1s"),
        ),
    ],
)
def test_a_command_is_healthy_when_it_exits_0(result: CommandResult, expected: CheckResult) -> None:
    assert asyncio.run(check_command(runner(result), "check", 1.0)) == expected


def check(**fields: Any) -> HealthCheckSpec:
    """A health check spec with the given fields."""
    return HealthCheckSpec.model_validate(fields)


def test_the_port_checked_is_the_fixed_one_or_the_tasks_port_at_the_index() -> None:
    assert check_port(check(), [31001, 31002]) == 31001
    assert check_port(check(port_index=1), [31001, 31002]) == 31002
    assert check_port(check(port=8080), []) == 8080
    assert check_port(check(port_index=2), [31001]) == (
        "the task has no host port 2 to check (it has 1)"
    )


def test_a_probe_checks_each_protocol_its_way() -> None:
    commands: list[tuple[str, float]] = []

    async def run(command: str, timeout: float) -> CommandResult:
        commands.append((command, timeout))
        return CommandResult(0)

    async def scenario() -> list[CheckResult]:
        async with serving(answer("HTTP/1.0 200 OK")) as (port, _):
            probe = task_probe([port], run)
            return [
                await probe(check(protocol="HTTP", path="/x", timeout=2)),
                await probe(check(protocol="TCP", timeout=2)),
                await probe(check(protocol="COMMAND", command="true", timeout=3)),
                await probe(check(protocol="TCP", port_index=1)),
            ]

    http_result, tcp, command, missing = asyncio.run(scenario())
    assert http_result.healthy and http_result.message.startswith("HTTP 200 from :")
    assert tcp.healthy and command.healthy
    assert missing == CheckResult(False, "the task has no host port 1 to check (it has 1)")
    assert commands == [("true", 3.0)]
