"""The harness of the CLI's integration tests: a real ``corral up``, and reading its answers.

``corral_up`` starts the server on a free port, waits for it and stops it; ``ok`` and
``tasks_of`` read what CLI invocations printed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import Result

from corral.client import Client
from tests.support.cluster import CORRAL, corral_env, free_port

START_DEADLINE = 60.0  # seconds for `corral up` to answer /health
STOP_DEADLINE = 20.0  # seconds for it to exit after SIGINT

Corral = Callable[..., Result]
"""Runs ``corral ARGS...`` against the test server (the ``corral`` fixture)."""


@dataclass(frozen=True)
class Server:
    """A running ``corral up``: where it listens and the admin token it wrote."""

    url: str
    token: str
    data: Path


def _server_env(tmp: Path) -> dict[str, str]:
    return corral_env(XDG_CONFIG_HOME=str(tmp / "xdg"))


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`corral up` exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(f"`corral up` did not answer {url}/health in {START_DEADLINE}s:\n{log.read_text()}")


def _wait_for_its_agent(url: str, token: str, log: Path) -> None:
    """Until the local agent of ``corral up`` has registered (it dials once the API answers)."""
    deadline = time.monotonic() + START_DEADLINE
    with Client(url, token) as client:
        while time.monotonic() < deadline:
            if any(a.connected for a in client.agents()):
                return
            time.sleep(0.05)
    pytest.fail(
        f"the agent of `corral up` did not register in {START_DEADLINE}s:\n{log.read_text()}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"`corral up` did not stop within {STOP_DEADLINE}s of SIGINT")


@contextmanager
def corral_up(tmp: Path) -> Iterator[Server]:
    """``corral up --port FREE`` in TMP with XDG_CONFIG_HOME=TMP/xdg, until exit. Its state goes
    where a new user's does: the default ``./.corral``, a relative path."""
    data, port = tmp / ".corral", free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "up.log"
    args = [*CORRAL, "up", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=tmp, env=_server_env(tmp), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_healthy(proc, url, log)
        token = (data / "admin.token").read_text().strip()
        _wait_for_its_agent(url, token, log)
        yield Server(url=url, token=token, data=data)
    finally:
        _stop(proc)


def ok(result: Result) -> str:
    """The stdout of a command that must have succeeded (else fail showing all it printed)."""
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}{result.exception!r}"
    return result.stdout


def tasks_of(corral: Corral, job: str) -> list[dict[str, Any]]:
    """``corral tasks --job JOB --json``, parsed."""
    tasks: list[dict[str, Any]] = json.loads(ok(corral("tasks", "--job", job, "--json")))
    return tasks
