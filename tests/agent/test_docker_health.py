"""Health checks and host ports of container tasks, against a real dockerd.

Skipped without dockerd, except in CI, where that is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from corral.agent.executors.base import CommandResult, TaskDirs
from corral.agent.executors.docker import DEFAULT_SOCKET, DockerExecutor, DockerHandle
from corral.agent.executors.docker_config import AGENT_ID_LABEL
from corral.agent.ports import PortPool
from corral.agent.runtime import load_agent_id
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState
from tests.agent.helpers import DEADLINE, RecordingAgent, free_range, launch
from tests.support.images import ensure_test_image

NO_DOCKER = "dockerd is not reachable on /var/run/docker.sock: install docker.io and start dockerd"
# Checks come fast; each may take its time (a `docker exec` takes over 0.2 s on a loaded machine,
# and a check that timed out says so instead of the exit status the tests expect).
FAST = {"delay": 0, "interval": 0.2, "timeout": 5, "grace_period": 10}


@pytest.fixture(scope="module")
def image() -> str:
    """The test image; skips without dockerd, except in CI, where that is a failure."""
    if not asyncio.run(DockerExecutor.available()):
        if os.environ.get("CI") == "true":
            pytest.fail(NO_DOCKER)
        pytest.skip(NO_DOCKER)
    return ensure_test_image()


async def _remove_containers(agent_id: str) -> None:
    async with aiodocker.Docker(url=DEFAULT_SOCKET) as docker:
        filters = json.dumps({"label": [f"{AGENT_ID_LABEL}={agent_id}"]})
        for found in await docker.containers.list(all="1", filters=filters):
            await found.delete(force=True)


@pytest.fixture
def agent_id(image: str, tmp_path: Path) -> Iterator[str]:
    """The id of this test's agent (kept in ``tmp_path``); its containers go afterwards."""
    ident = load_agent_id(tmp_path)
    yield ident
    asyncio.run(_remove_containers(ident))


def container(image: str, docker: dict[str, Any] | None = None, **fields: Any) -> TaskLaunch:
    """A docker launch of the test image."""
    return launch(driver="docker", docker={"image": image, **(docker or {})}, mem=64, **fields)


@asynccontextmanager
async def docker_agent(data_dir: Path, agent_id: str) -> AsyncIterator[RecordingAgent]:
    """An agent offering the docker driver with a pool of its own; stopped afterwards."""
    executor = DockerExecutor(
        agent_id, allowed_volumes=[data_dir], port_pool=PortPool(*free_range(4))
    )
    agent = RecordingAgent(data_dir, {"docker": executor})
    try:
        yield agent
    finally:
        await agent.stop(timeout=DEADLINE)


def test_a_command_runs_inside_the_container_with_its_environment(
    image: str, agent_id: str, tmp_path: Path
) -> None:
    task = container(image, shell="echo inside > /tmp/only-here; exec sleep 30", env={"A": "b"})

    async def scenario() -> list[CommandResult]:
        executor = DockerExecutor(agent_id, allowed_volumes=[tmp_path])
        handle = await executor.start(task, TaskDirs(tmp_path / "tasks" / task.task_id))
        try:
            results = []
            for command, timeout in [
                ('cat /tmp/only-here && echo "$A $CORRAL_TASK_ID"', DEADLINE),
                ("echo failing >&2; exit 3", DEADLINE),
                ("sleep 10", 0.5),
            ]:
                results.append(await handle.run_command(command, timeout))
            return results
        finally:
            await handle.kill(0)
            await asyncio.wait_for(handle.wait(), DEADLINE)

    found, failing, slow = asyncio.run(scenario())
    assert found == CommandResult(0, f"inside\nb {task.task_id}")
    assert failing == CommandResult(3, "failing")
    assert slow == CommandResult(None, error="did not finish within 0.5s")


def test_a_container_passing_its_command_check_is_reported_healthy(
    image: str, agent_id: str, tmp_path: Path
) -> None:
    check = {**FAST, "protocol": "COMMAND", "command": "test -f /tmp/alive"}
    task = container(image, shell="touch /tmp/alive; exec sleep 30", health_checks=[check])

    async def scenario() -> None:
        async with docker_agent(tmp_path, agent_id) as agent:
            await agent.launch(task)
            report = await agent.health(task.task_id)
            assert (report.healthy, report.reason) == (True, "command exited with status 0")
            await agent.kill(task.task_id, 0, "test over")
            assert (await agent.ended(task.task_id)).state is TaskState.KILLED

    asyncio.run(scenario())


def test_a_container_failing_its_command_check_is_killed(
    image: str, agent_id: str, tmp_path: Path
) -> None:
    # Healthy while the test leaves a file in the sandbox (mounted in the container).
    check = {
        **FAST,
        "protocol": "COMMAND",
        "command": 'test -f "$MESOS_SANDBOX/alive"',
        "max_consecutive_failures": 2,
    }
    # sleep, the container's PID 1, ignores SIGTERM: the kill needs not wait out the default
    # 10 s grace for the SIGKILL.
    task = container(image, shell="exec sleep 30", health_checks=[check], kill_grace=1)

    async def scenario() -> None:
        async with docker_agent(tmp_path, agent_id) as agent:
            switch = agent.tasks_dir / task.task_id / "sandbox" / "alive"
            switch.parent.mkdir(parents=True)
            switch.touch()
            await agent.launch(task)
            assert (await agent.health(task.task_id)).healthy is True
            switch.unlink()
            ended = await agent.ended(task.task_id)
            assert [healthy for healthy, _ in agent.health_reports(task.task_id)] == [True, False]
            assert ended.state is TaskState.KILLED
            assert ended.reason.startswith(
                "failed 2 health checks in a row: command exited with status 1 (killed"
            )

    asyncio.run(scenario())


def test_an_http_check_reaches_a_bridge_container_on_its_published_port(
    image: str, agent_id: str, tmp_path: Path
) -> None:
    mapping = {"containerPort": 8080, "hostPort": 0}
    check = {**FAST, "protocol": "HTTP", "path": "/index.html"}
    script = "echo hi > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
    task = container(image, {"portMappings": [mapping]}, shell=script, health_checks=[check])

    async def scenario() -> None:
        async with docker_agent(tmp_path, agent_id) as agent:
            await agent.launch(task)
            report = await agent.health(task.task_id)
            port = agent.executors["docker"].ports(task.task_id)[0]
            assert (report.healthy, report.reason) == (True, f"HTTP 200 from :{port}/index.html")
            await agent.kill(task.task_id, 0, "test over")
            await agent.ended(task.task_id)

    asyncio.run(scenario())


def test_a_host_network_container_gets_the_ports_of_the_launch(
    image: str, agent_id: str, tmp_path: Path
) -> None:
    first, last = free_range(3)
    ports = [{"port": 0, "name": "web"}, {"port": last}]
    script = 'echo "$PORT0 $PORT_WEB $PORT1 $PORTS"'
    task = container(image, {"network": "HOST"}, shell=script, ports=ports)
    dirs = TaskDirs(tmp_path / "tasks" / task.task_id)

    async def scenario() -> list[int]:
        executor = DockerExecutor(
            agent_id, allowed_volumes=[tmp_path], port_pool=PortPool(first, last - 1)
        )
        handle = await executor.start(task, dirs)
        given = executor.ports(task.task_id)
        assert isinstance(handle, DockerHandle)
        assert (await asyncio.wait_for(handle.wait(), DEADLINE)).state is TaskState.FINISHED
        assert executor.ports(task.task_id) == []
        return given

    assert asyncio.run(scenario()) == [first, last]
    printed = (dirs.sandbox / "stdout").read_text()
    assert printed == f"{first} {first} {last} {first},{last}\n"
