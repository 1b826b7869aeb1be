"""The CLI is a thin client: a client command loads none of the server (web framework, store,
executors, master), the blocking client none of httpx, and the job listing and the help none of
Corral's models, so they answer in a fraction of a second (bench/cli_start.py times them). An
agent, on every node, loads none of the master's side (bench/agent_start.py measures it)."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.fake_master import serving
from tests.cli.samples import job_view
from tests.support.cluster import corral_env

SERVER_PACKAGES = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "aiodocker")
SERVER_MODULES = (
    "corral.master",
    "corral.store",
    "corral.api",
    "corral.agent",
    "corral.cli.serving",
    "corral.cli.agent_serving",
)
# What only a master runs: an agent dials out over a WebSocket and serves nothing.
MASTER_SIDE = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "corral.master",
    "corral.store",
    "corral.api",
    "corral.cli.serving",
)
# The blocking client speaks http.client; only following a stream (--wait) uses httpx.
HTTPX = ("httpx", "httpcore", "anyio", "h11")
# What a job listing or the help has no use for: Corral's models and the typed clients, spec
# files, asyncio. (pydantic itself is loaded anyway: typer >= 0.28 coerces options with it.)
MODELS = ("corral.spec", "corral.client.sync", "corral.client._calls", "yaml", "asyncio")
# corral.spec's plain modules: enums and limits, no models.
PLAIN_SPEC = ("corral.spec", "corral.spec.states", "corral.spec.limits", "corral.spec.sweeps")

CLIENT_COMMANDS = [
    ("--help",),
    ("jobs",),
    ("jobs", "--scheduled"),
    ("job", "graph"),
    ("tasks", "--job", "x"),
    ("agents",),
    ("services",),
    ("logs", "x.1.0.0"),
    ("run", "--name", "x", "--", "true"),
]
LEAN_COMMANDS = [("--help",), ("jobs",), ("jobs", "--scheduled"), ("job", "graph")]

# Runs a CLI command in a fresh interpreter, then prints every module it loaded.
PROBE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.__stderr__))
from corral.cli.main import app
sys.argv = ["corral", *sys.argv[1:]]
app()
"""


def answer(request: httpx.Request) -> httpx.Response:
    """The fake master: one job in the listings, nothing elsewhere, any job is created."""
    if request.url.path == "/api/v1/jobs" and request.method == "GET":
        return httpx.Response(200, json=[job_view().model_dump(mode="json")])
    if request.method == "POST":
        return httpx.Response(201, json=job_view("x").model_dump(mode="json"))
    return httpx.Response(200 if request.url.path.endswith("s") else 404, json=[])


@pytest.fixture(scope="module")
def master() -> Iterator[str]:
    """The fake master's URL."""
    with serving(answer) as url:
        yield url


@functools.cache
def loaded_by(url: str, *args: str) -> list[str]:
    """The modules a run of ``corral ARGS`` against the master at ``url`` loaded."""
    env = corral_env(CORRAL_URL=url, CORRAL_TOKEN="t")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=60
    )
    return list(json.loads(done.stderr.strip().splitlines()[-1]))


def among(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    """The modules that are one of ``packages`` or inside one."""
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


@pytest.mark.parametrize("args", CLIENT_COMMANDS, ids=" ".join)
def test_a_client_command_imports_no_server_module(master: str, args: tuple[str, ...]) -> None:
    modules = loaded_by(master, *args)
    assert "corral.cli.main" in modules  # the probe ran the CLI
    assert among(modules, SERVER_PACKAGES + SERVER_MODULES) == []


@pytest.mark.parametrize("args", CLIENT_COMMANDS, ids=" ".join)
def test_a_client_command_that_follows_nothing_imports_no_httpx(
    master: str, args: tuple[str, ...]
) -> None:
    modules = loaded_by(master, *args)
    assert "corral.cli.main" in modules
    assert among(modules, HTTPX) == []


@pytest.mark.parametrize("args", LEAN_COMMANDS, ids=" ".join)
def test_the_help_and_the_job_listings_import_no_models(master: str, args: tuple[str, ...]) -> None:
    modules = loaded_by(master, *args)
    assert "corral.cli.main" in modules
    assert [m for m in among(modules, MODELS) if m not in PLAIN_SPEC] == []


def test_the_job_listing_prints_the_fake_masters_job(master: str) -> None:
    # The probes above measure a command that got as far as printing, not one that failed.
    env = corral_env(CORRAL_URL=master, CORRAL_TOKEN="t")
    done = subprocess.run(
        [sys.executable, "-m", "corral.cli", "jobs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[1].split()[:3] == ["j", "ada", "1"]


def test_the_help_loads_no_http_client(master: str) -> None:
    modules = loaded_by(master, "--help")
    assert "corral.cli.main" in modules
    assert among(modules, ("http.client", "corral.client._http", "corral.client.rows")) == []


def test_an_agent_imports_none_of_the_master(master: str, tmp_path: Path) -> None:
    # A real `corral agent`, stopped by SIGTERM once it dials (the fake master never lets it
    # join); it then ends as it always does, and the probe prints what it loaded.
    args = ["agent", "--master", master, "--data", str(tmp_path / "agent"), "--disk", "100"]
    env = corral_env(CORRAL_TOKEN="t", PYTHONUNBUFFERED="1")  # its first line comes at once
    with subprocess.Popen(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as agent:
        try:
            assert agent.stdout is not None
            dialing = agent.stdout.readline()  # ends at the agent's first line, or at its exit
            agent.send_signal(signal.SIGTERM)
            _, err = agent.communicate(timeout=60)
        finally:
            agent.kill()
    assert dialing.startswith("Corral agent "), err
    modules = json.loads(err.strip().splitlines()[-1])
    assert "corral.agent.runtime" in modules  # the probe ran an agent
    assert among(modules, MASTER_SIDE) == []
