"""The CLI is a thin client: a client command loads none of the server (web framework, store,
executors, master), so it answers in a fraction of a second."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.cluster import corral_env, free_port

SERVER_PACKAGES = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "aiodocker")
SERVER_MODULES = (
    "corral.master",
    "corral.store",
    "corral.api",
    "corral.agent",
    "corral.cli.serving",
)

# Runs a CLI command in a fresh interpreter, then prints every module it loaded.
PROBE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.__stderr__))
from corral.cli.main import app
sys.argv = ["corral", *sys.argv[1:]]
app()
"""


def loaded_by(*args: str) -> list[str]:
    """The modules a run of ``corral ARGS`` loaded (against a master that is not there)."""
    env = corral_env(CORRAL_URL=f"http://127.0.0.1:{free_port()}", CORRAL_TOKEN="t")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=60
    )
    return list(json.loads(done.stderr.strip().splitlines()[-1]))


def server_modules(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if m.split(".")[0] in SERVER_PACKAGES
        or any(m == s or m.startswith(s + ".") for s in SERVER_MODULES)
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("jobs",),
        ("tasks", "--job", "x"),
        ("agents",),
        ("services",),
        ("logs", "x.1.0.0"),
        ("run", "--name", "x", "--", "true"),
    ],
    ids=" ".join,
)
def test_a_client_command_imports_no_server_module(args: tuple[str, ...]) -> None:
    modules = loaded_by(*args)
    assert "corral.cli.main" in modules  # the probe ran the CLI
    assert server_modules(modules) == []
