"""Server commands: ``corral up`` (master and agent in one process), ``corral master`` and
``corral agent``."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from corral.agent import datadir
from corral.agent.executors.base import Executor
from corral.agent.executors.docker import DockerExecutor
from corral.agent.executors.process import ProcessExecutor
from corral.agent.ports import PortPool
from corral.agent.runtime import Agent, AgentConfig, load_agent_id
from corral.api.app import create_app
from corral.client.config import user_config_path, write_config
from corral.master.master import Master
from corral.spec.protocol import AgentResources
from corral.store.store import Store

log = logging.getLogger("corral")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


AllowVolumeOption = Annotated[
    list[str] | None,
    typer.Option(help="Host path under which containers may mount volumes (repeatable)."),
]
AllowPrivilegedOption = Annotated[
    bool, typer.Option("--allow-privileged", help="Admin only: run privileged containers.")
]
MaxOutputOption = Annotated[
    int,
    typer.Option(
        min=1, help="MiB of stdout + stderr a task may write; a task over it is stopped, FAILED."
    ),
]


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: Corral stops in its own order (agent, then master)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def default_data_dir() -> Path:
    """``$CORRAL_DATA``, else ``./.corral``."""
    return Path(os.environ.get("CORRAL_DATA", ".corral"))


def host_resources(data_dir: Path) -> AgentResources:
    """What this machine has: all cpus, all memory, the free disk of the data dir."""
    mem_kib = 1024 * 1024
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    data_dir.mkdir(parents=True, exist_ok=True)
    disk = shutil.disk_usage(data_dir).free // (1024 * 1024)
    return AgentResources(cpus=float(os.cpu_count() or 1), mem=mem_kib // 1024, disk=disk)


async def executors(config: AgentConfig) -> dict[str, Executor]:
    """The drivers this agent offers: processes always, containers when dockerd answers."""
    # One pool for both drivers, so a process and a container never get the same host port.
    pool = PortPool(*config.port_range)
    offered: dict[str, Executor] = {"process": ProcessExecutor(port_pool=pool)}
    if await DockerExecutor.available():
        offered["docker"] = DockerExecutor(
            load_agent_id(config.data_dir),
            allowed_volumes=config.volume_roots,
            allow_privileged=config.allow_privileged,
            port_pool=pool,
            keep_containers=config.keep_containers,
        )
    else:
        log.warning("no Docker daemon answers: this agent offers no docker driver")
    return offered


def _parse_range(value: str) -> tuple[int, int]:
    low, sep, high = value.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or int(low) > int(high):
        raise typer.BadParameter(f"{value!r} is not a range LOW-HIGH", param_hint="--ports")
    return int(low), int(high)


def _allowed_paths(paths: list[str] | None) -> list[str]:
    out = []
    for p in paths or []:
        if not p.startswith("/"):
            raise typer.BadParameter(f"{p!r} is not an absolute path", param_hint="--allow-volume")
        out.append(os.path.normpath(p))
    return out


def _parse_attrs(attrs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in attrs:
        key, sep, value = a.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{a!r} is not key=value", param_hint="--attr")
        out[key] = value
    return out


def _claim(data_dir: Path) -> None:
    """Hold the agent's data dir for the life of this process, or stop with why not."""
    try:
        datadir.claim(data_dir)
    except datadir.DataDirInUse as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise typer.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)


async def _serve(
    master: Master, host: str, port: int, auth: bool, agent_of: AgentConfig | None
) -> None:
    """Run the master's API (and, for ``up``, a local agent) until SIGINT or SIGTERM."""
    await master.start()
    server = _Server(
        uvicorn.Config(
            create_app(master, auth_required=auth),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            # Event streams never end by themselves; don't let one hold up a shutdown.
            timeout_graceful_shutdown=3,
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # it failed to start: raise why
            raise SystemExit(1)
        await asyncio.sleep(0.01)
    agent = None if agent_of is None else Agent(agent_of, await executors(agent_of))
    agent_task = None if agent is None else asyncio.create_task(agent.run())
    await stop.wait()
    log.warning("stopping")
    if agent is not None and agent_task is not None:
        await agent.stop()
        agent_task.cancel()
    server.should_exit = True
    await serving
    await master.stop()
    master.store.close()


def up(
    data: Annotated[
        Path | None, typer.Option(help="Data dir [default: $CORRAL_DATA or ./.corral]")
    ] = None,
    port: Annotated[int, typer.Option(help="Port of the API and dashboard.")] = 8080,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept calls without a token.")
    ] = False,
    cpus: Annotated[float | None, typer.Option(help="CPUs the local agent offers.")] = None,
    mem: Annotated[int | None, typer.Option(help="MiB the local agent offers.")] = None,
    allow_volume: AllowVolumeOption = None,
    allow_privileged: AllowPrivilegedOption = False,
    max_output: MaxOutputOption = 1024,
) -> None:
    """Start a whole cluster here: a master and one local agent, state in the data dir."""
    data_dir = data or default_data_dir()
    _claim(data_dir / "agent")
    url = f"http://127.0.0.1:{port}"
    store = Store.in_dir(data_dir)
    store.migrate()
    master = Master(store)
    token = None if no_auth else master.ensure_admin_token(data_dir / "admin.token")
    res = host_resources(data_dir / "agent")
    res = AgentResources(cpus=cpus or res.cpus, mem=mem or res.mem, disk=res.disk)
    agent = AgentConfig(
        url,
        token,
        data_dir / "agent",
        socket.gethostname(),
        res,
        allowed_volumes=_allowed_paths(allow_volume),
        allow_privileged=allow_privileged,
        max_output=max_output * 2**20,
    )
    write_config(data_dir / "client.json", url, token)
    write_config(user_config_path(), url, token)
    typer.echo(f"Corral is up at {url}  (state in {data_dir})")
    if token:
        typer.echo(f"admin token: {token}  (also in {data_dir / 'admin.token'})")
    typer.echo("Ctrl-C stops it; running tasks are killed and recorded.")
    asyncio.run(_serve(master, "127.0.0.1", port, not no_auth, agent))


def master(
    db: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL [default: sqlite in --data]")
    ] = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve on.")] = "127.0.0.1:8080",
    data: Annotated[Path | None, typer.Option(help="Where admin.token is kept.")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Loopback only.")] = False,
    lost_after: Annotated[
        float,
        typer.Option(
            help="Seconds of silence before an agent is LOST and its tasks are replaced. "
            "8 keeps a killed node's services running again elsewhere within 10 s."
        ),
    ] = 8.0,
) -> None:
    """Run a master: API, scheduler and state store, for agents to dial in."""
    host, port = _split_listen(listen)
    if no_auth and host not in LOOPBACK:
        raise typer.BadParameter(
            "--no-auth is only allowed on a loopback address", param_hint="--no-auth"
        )
    data_dir = data or default_data_dir()
    store = Store(db) if db else Store.in_dir(data_dir)
    store.migrate()
    m = Master(store, lost_after=lost_after)
    if not no_auth:
        token = m.ensure_admin_token(data_dir / "admin.token")
        typer.echo(f"admin token in {data_dir / 'admin.token'}")
        write_config(data_dir / "client.json", f"http://{host}:{port}", token)
    typer.echo(f"Corral master listening on http://{host}:{port}")
    asyncio.run(_serve(m, host, port, not no_auth, None))


def agent(
    master_url: Annotated[str, typer.Option("--master", help="URL of the master.")],
    token: Annotated[
        str | None, typer.Option(envvar="CORRAL_TOKEN", help="Token for the master.")
    ] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs to offer [default: all].")] = None,
    mem: Annotated[int | None, typer.Option(help="MiB of memory to offer [default: all].")] = None,
    disk: Annotated[int | None, typer.Option(help="MiB of disk to offer [default: free].")] = None,
    attr: Annotated[
        list[str] | None, typer.Option(help="Attribute key=value (repeatable).")
    ] = None,
    data: Annotated[Path, typer.Option(help="Where the agent keeps sandboxes and journal.")] = Path(
        ".corral-agent"
    ),
    hostname: Annotated[
        str | None, typer.Option(help="Name to report [default: this host's].")
    ] = None,
    allow_volume: AllowVolumeOption = None,
    allow_privileged: AllowPrivilegedOption = False,
    ports: Annotated[
        str, typer.Option(help="Host ports it gives to tasks, LOW-HIGH.")
    ] = "31000-32000",
    keep_containers: Annotated[
        bool, typer.Option("--keep-containers", help="Keep ended containers, for debugging.")
    ] = False,
    keep_sandboxes: Annotated[
        float, typer.Option(min=0, help="Hours a finished task's sandbox is kept.")
    ] = 168.0,
    max_output: MaxOutputOption = 1024,
) -> None:
    """Run an agent: offer this node's resources to a master and run its tasks."""
    _claim(data)
    res = host_resources(data)
    res = AgentResources(
        cpus=cpus or res.cpus, mem=mem or res.mem, disk=res.disk if disk is None else disk
    )
    config = AgentConfig(
        master_url,
        token,
        data,
        hostname or socket.gethostname(),
        res,
        _parse_attrs(attr or []),
        allowed_volumes=_allowed_paths(allow_volume),
        allow_privileged=allow_privileged,
        port_range=_parse_range(ports),
        keep_containers=keep_containers,
        keep_sandboxes=keep_sandboxes * 3600,
        max_output=max_output * 2**20,
    )
    asyncio.run(_run_agent(config))


async def _run_agent(config: AgentConfig) -> None:
    a = Agent(config, await executors(config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(a.run())
    typer.echo(f"Corral agent {a.id} ({config.hostname}) dialing {config.master_url}")
    await stop.wait()
    await a.stop()
    task.cancel()


def register(app: typer.Typer) -> None:
    """Add the server commands to the ``corral`` app."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    app.command()(up)
    app.command()(master)
    app.command()(agent)
