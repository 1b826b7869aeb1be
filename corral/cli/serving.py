"""What ``corral master`` and ``corral up`` run: a master's API (with, for ``up``, a local agent
from ``agent_serving``). Imported only when one of them starts, so that client commands and
``corral agent`` load none of the server stack (uvicorn, FastAPI, SQLAlchemy, the store)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer
import uvicorn

from corral.agent import gpus
from corral.agent.runtime import Agent, AgentConfig
from corral.api.app import create_app
from corral.cli import event_loop, stack_dumps
from corral.cli.agent_serving import claim, executors, host_resources
from corral.client.config import user_config_path, write_config
from corral.master.heap import tune_collector
from corral.master.master import Master
from corral.spec.protocol import AgentResources
from corral.store.engines import redacted
from corral.store.errors import StoreUnusable
from corral.store.store import Store, StoreFull, StoreUnavailable

log = logging.getLogger("corral")


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: Corral stops in its own order (agent, then master)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Access:
    """Who may call the API: token holders, or (``auth_required`` off, loopback only) anyone;
    with ``private_reads``, users read only their own work."""

    auth_required: bool = True
    private_reads: bool = False


def open_store(db: str | None, data_dir: Path) -> Store:
    """The master's store (``db``, else ``state.db`` in the data dir), migrated to the newest
    schema; one that cannot be opened stops the command with why, on one line."""
    try:
        store = Store(db) if db else Store.in_dir(data_dir)
        store.migrate()
    except StoreUnusable as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except StoreUnavailable as e:
        typer.echo(f"error: cannot reach the database {redacted(db or '')}: {e.why}", err=True)
        raise typer.Exit(1) from None
    except StoreFull as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    return store


def up(
    data_dir: Path,
    port: int,
    access: Access,
    offer: tuple[float | None, int | None, int | None],
    allowed_volumes: list[str],
    allow_privileged: bool,
    max_output: int,
    db: str | None = None,
    half_life: float = 86400.0,
    preempt_after: float | None = None,
) -> None:
    """``corral up``: a master and a local agent in this process, state in ``data_dir``; the
    agent offers ``offer``'s cpus, mem and GPUs (None: what the node has), and joins with an
    agent token of its own (``agent.token``), never the admin's."""
    claim(data_dir / "agent")
    cpus, mem, declared = offer
    url = f"http://127.0.0.1:{port}"
    store = open_store(db, data_dir)
    master = Master(
        store,
        fair_share_half_life=half_life,
        preempt_after=preempt_after,
        url=url,
        lease=default_lease(store),
    )
    token = agent_token = None
    if access.auth_required:
        token = master.ensure_admin_token(data_dir / "admin.token")
        agent_token = master.accounts.ensure_agent_token(data_dir / "agent.token")
    res = host_resources(data_dir / "agent")
    devices = gpus.offered(declared)
    res = AgentResources(
        cpus=cpus or res.cpus, mem=mem or res.mem, disk=res.disk, gpus=len(devices)
    )
    agent = AgentConfig(
        [url],
        agent_token,
        data_dir / "agent",
        socket.gethostname(),
        res,
        allowed_volumes=allowed_volumes,
        allow_privileged=allow_privileged,
        max_output=max_output,
        gpus=devices,
    )
    write_config(data_dir / "client.json", url, token)
    write_config(user_config_path(), url, token)
    typer.echo(f"Corral is up at {url}  (state in {data_dir})")
    if token:
        typer.echo(f"admin token: {token}  (also in {data_dir / 'admin.token'})")
    typer.echo("Ctrl-C stops it; running tasks are killed and recorded.")
    event_loop.run(_serve(master, "127.0.0.1", port, access, agent))


def default_lease(store: Store) -> float:
    """Seconds of a leader's lease: 2 on PostgreSQL, where masters on other hosts wait for it to
    run out; 10 on SQLite (one host), where a long write holds up the renewal too."""
    return 2.0 if store.engine.dialect.name == "postgresql" else 10.0


def master(
    db: str | None,
    where: tuple[str, int, str],
    data_dir: Path,
    access: Access,
    lost_after: float,
    lease: float | None,
    half_life: float = 86400.0,
    preempt_after: float | None = None,
) -> None:
    """``corral master``: API, scheduler and store, for agents to dial in; ``where`` is the
    host and port to listen on and the URL this master is reached at; past usage counts half
    after ``half_life`` seconds in fair share; with ``preempt_after`` (seconds; None: off), a
    task of a user below their share that waited that long may preempt."""
    host, port, url = where
    store = open_store(db, data_dir)
    m = Master(
        store,
        lost_after=lost_after,
        fair_share_half_life=half_life,
        preempt_after=preempt_after,
        url=url,
        lease=lease or default_lease(store),
    )
    if access.auth_required:
        token = m.ensure_admin_token(data_dir / "admin.token")
        typer.echo(f"admin token in {data_dir / 'admin.token'}")
        write_config(data_dir / "client.json", url, token)
    typer.echo(f"Corral master listening on http://{host}:{port} as {url} (lease {m.lease:g}s)")
    event_loop.run(_serve(m, host, port, access, None))


async def _serve(
    master: Master, host: str, port: int, access: Access, agent_of: AgentConfig | None
) -> None:
    """Run the master's API (and, for ``up``, a local agent) until SIGINT or SIGTERM."""
    stack_dumps.install()
    tune_collector()
    await master.start()
    server = _Server(
        uvicorn.Config(
            create_app(
                master,
                auth_required=access.auth_required,
                private_reads=access.private_reads,
            ),
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
    # The lease first: another master takes over while this one's connections wind down.
    await master.stop()
    server.should_exit = True
    await serving
    master.store.close()
