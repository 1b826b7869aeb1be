"""What ``corral agent`` runs: an agent that dials its masters, and the parts of it ``corral up``
shares. It imports none of the master's server stack (web framework, store), which an agent on
every node has no use for; ``serving`` holds that side and imports this one."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
from pathlib import Path

import typer

from corral.agent import datadir, gpus
from corral.agent.executors.base import Executor
from corral.agent.executors.docker import DockerExecutor
from corral.agent.executors.process import ProcessExecutor
from corral.agent.ports import PortPool
from corral.agent.runtime import Agent, AgentConfig, load_agent_id
from corral.cli import event_loop, stack_dumps
from corral.spec.protocol import AgentResources

log = logging.getLogger("corral")


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
    agent_id = load_agent_id(config.data_dir)
    # Task cgroups under one of this agent's own: agents sharing a host (a test cluster) never
    # meet each other's cgroups, even for equal task ids of two clusters.
    process = ProcessExecutor(f"corral-{agent_id}", port_pool=pool)
    offered: dict[str, Executor] = {"process": process}
    if await DockerExecutor.available():
        offered["docker"] = DockerExecutor(
            agent_id,
            allowed_volumes=config.volume_roots,
            data_dir=config.data_dir,
            allow_privileged=config.allow_privileged,
            port_pool=pool,
            keep_containers=config.keep_containers,
        )
    else:
        log.warning("no Docker daemon answers: this agent offers no docker driver")
    return offered


def claim(data_dir: Path) -> None:
    """Hold the agent's data dir for the life of this process, or stop with why not."""
    try:
        datadir.claim(data_dir)
    except datadir.DataDirInUse as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def agent(
    master_urls: list[str],
    token: str | None,
    offer: tuple[float | None, int | None, int | None, int | None],
    data: Path,
    hostname: str | None,
    attributes: dict[str, str],
    allowed_volumes: list[str],
    allow_privileged: bool,
    port_range: tuple[int, int],
    keep_containers: bool,
    keep_sandboxes: float,
    max_output: int,
) -> None:
    """``corral agent``: offer this node's cpus, mem, disk and GPUs (``offer``; None: all of
    it, the GPUs NVML finds) to the master and run its tasks."""
    claim(data)
    cpus, mem, disk, declared = offer
    res = host_resources(data)
    devices = gpus.offered(declared)
    res = AgentResources(
        cpus=cpus or res.cpus,
        mem=mem or res.mem,
        disk=res.disk if disk is None else disk,
        gpus=len(devices),
    )
    config = AgentConfig(
        master_urls,
        token,
        data,
        hostname or socket.gethostname(),
        res,
        attributes,
        allowed_volumes=allowed_volumes,
        allow_privileged=allow_privileged,
        port_range=port_range,
        keep_containers=keep_containers,
        keep_sandboxes=keep_sandboxes,
        max_output=max_output,
        gpus=devices,
    )
    event_loop.run(_run_agent(config))


async def _run_agent(config: AgentConfig) -> None:
    stack_dumps.install()
    a = Agent(config, await executors(config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(a.run())
    typer.echo(f"Corral agent {a.id} ({config.hostname}) dialing {', '.join(config.master_urls)}")
    await stop.wait()
    await a.stop()
    task.cancel()
