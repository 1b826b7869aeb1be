"""Fixtures for CLI tests: a real ``corral up`` in a subprocess, and a runner of the CLI.

The server is started once per session (starting it takes a while); tests keep out of each
other's way by giving their jobs unique names.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner, Result

from corral.cli.main import app
from tests.cli.harness import Corral, Server, corral_up


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``corral up`` for the whole session."""
    with corral_up(tmp_path_factory.mktemp("corral")) as running:
        yield running


@pytest.fixture
def corral(server: Server) -> Corral:
    """Run ``corral ARGS...`` in-process against the test server; returns typer's ``Result``."""
    runner = CliRunner(env={"CORRAL_URL": server.url, "CORRAL_TOKEN": server.token})

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke


@pytest.fixture
def job_name(request: pytest.FixtureRequest) -> str:
    """A job name no other test uses."""
    return f"t-{request.node.name[5:30].replace('_', '-')}-{secrets.token_hex(2)}"
