"""The volume check cannot be raced: a process swaps an allowed path between a directory and a
symbolic link to a secret directory outside the allowed root while containers mount that path.
Each launch either mounts the directory that was checked or is refused; none reads the secret.

Also: nothing in the agent's data dir (sandboxes, journal) can be mounted, even when an allowed
root holds the data dir.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.agent.executors.base import LaunchError
from corral.agent.executors.docker import DockerExecutor
from corral.agent.executors.docker_volumes import stage_volumes
from corral.agent.runtime import AgentConfig
from corral.spec.protocol import AgentResources
from corral.spec.states import TaskState
from tests.agent.test_docker_executor import Agent, agent, finish, image, launch_error, run

__all__ = ["agent", "image"]

LAUNCHES = 40
AT_ONCE = 4
SECRET = "TOP-SECRET-4f1d"
# Exchanges ``race`` with a link to the secret, atomically (renameat2 RENAME_EXCHANGE), for
# ever: at any instant ``race`` is either the directory or the link.
SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
race, secret = sys.argv[1:]
link = race + ".link"
os.symlink(secret, link)
while libc.renameat2(-100, race.encode(), -100, link.encode(), 2) == 0:  # AT_FDCWD, EXCHANGE
    pass
raise OSError(ctypes.get_errno(), "renameat2")
"""


@pytest.fixture
def swapped(agent: Agent, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An allowed root whose ``race`` a process keeps swapping; the root and ``race``."""
    root = tmp_path / "allowed"
    (root / "race").mkdir(parents=True)
    (root / "race" / "marker").write_text("allowed\n")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "shadow").write_text(SECRET + "\n")
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(root / "race"), str(secret)])
    try:
        yield root, root / "race"
    finally:
        swapper.kill()
        swapper.wait()


def test_swapping_a_volume_for_a_link_while_containers_mount_it_never_reaches_outside(
    agent: Agent, swapped: tuple[Path, Path]
) -> None:
    root, race = swapped
    executor = agent.executor(allowed_volumes=[root])
    volume = {"containerPath": "/data", "hostPath": str(race), "mode": "RO"}
    outcomes: list[str] = []

    async def one(gate: asyncio.Semaphore) -> None:
        task = agent.launch({"volumes": [volume]}, shell="cat /data/marker /data/shadow")
        async with gate:
            try:
                handle = await executor.start(task, agent.dirs(task))
            except LaunchError:
                outcomes.append("refused")
                return
            await finish(handle)
        seen = (agent.dirs(task).sandbox / "stdout").read_text()
        outcomes.append("escaped" if SECRET in seen else "allowed" if "allowed" in seen else seen)

    async def scenario() -> None:
        gate = asyncio.Semaphore(AT_ONCE)
        await asyncio.gather(*(one(gate) for _ in range(LAUNCHES)))

    run(scenario())
    counts = {kind: outcomes.count(kind) for kind in set(outcomes)}
    print(f"{LAUNCHES} launches under a swap race: {counts}")
    assert len(outcomes) == LAUNCHES
    assert counts.get("escaped", 0) == 0, counts
    assert set(counts) <= {"refused", "allowed"}, counts
    assert counts.get("allowed", 0) > 0, "no launch mounted the checked directory"
    # The pins are gone once the containers started: nothing of them is left mounted.
    staging = f"/run/corral/volumes/{agent.id}"
    assert staging not in Path("/proc/self/mountinfo").read_text()
    assert not Path(staging).exists() or list(Path(staging).iterdir()) == []


def test_a_volume_inside_the_agents_data_dir_is_refused_even_under_an_allowed_root(
    agent: Agent, tmp_path: Path
) -> None:
    data = tmp_path / "agent-data"
    (data / "tasks" / "other.1.0.0" / "sandbox").mkdir(parents=True)
    executor_options = {"allowed_volumes": [tmp_path], "data_dir": data}
    for inside in (data, data / "tasks" / "other.1.0.0" / "sandbox"):
        volume = {"containerPath": "/peek", "hostPath": str(inside), "mode": "RO"}
        reason = launch_error(agent, agent.launch({"volumes": [volume]}), **executor_options)
        assert reason == "volumes[0].host_path is inside the agent's own data dir", reason
    assert agent.containers() == []


def test_the_sandbox_is_still_mounted_as_mesos_sandbox_and_a_plain_volume_works(
    agent: Agent, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shared = tmp_path_factory.mktemp("shared")
    (shared / "input").write_text("in\n")
    executor = DockerExecutor(agent.id, allowed_volumes=[shared], data_dir=agent.data)
    volume = {"containerPath": "/in", "hostPath": str(shared), "mode": "RO"}
    task = agent.launch({"volumes": [volume]}, shell="cat /in/input; echo hi > $MESOS_SANDBOX/f")

    async def scenario() -> TaskState:
        return (await finish(await executor.start(task, agent.dirs(task)))).state

    assert run(scenario()) is TaskState.FINISHED
    assert (agent.dirs(task).sandbox / "stdout").read_text() == "in\n"
    assert (agent.dirs(task).sandbox / "f").read_text() == "hi\n"


def test_an_agent_offers_only_its_allowed_paths_for_volumes_not_its_data_dir(
    tmp_path: Path,
) -> None:
    config = AgentConfig(
        master_urls=["http://master"],
        token=None,
        data_dir=tmp_path / "agent",
        hostname="a1",
        resources=AgentResources(cpus=1, mem=256, disk=0),
        allowed_volumes=["/srv/shared"],
    )
    assert config.volume_roots == ["/srv/shared"]


def test_pins_left_by_an_agent_that_died_mid_launch_are_released_when_it_recovers_the_task(
    agent: Agent, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shared = tmp_path_factory.mktemp("shared")
    (shared / "keep").write_text("user data\n")
    staging = agent.data.parent / f"{agent.id}-pins"
    task = agent.launch(command=["true"])
    stage_volumes([str(shared)], staging / task.task_id)  # pinned, never released: a crash
    assert str(staging) in Path("/proc/self/mountinfo").read_text()
    executor = agent.executor(allowed_volumes=[shared], staging_dir=staging)
    run(executor.recover(task, agent.dirs(task)))
    assert str(staging) not in Path("/proc/self/mountinfo").read_text()
    assert not (staging / task.task_id).exists()
    assert (shared / "keep").read_text() == "user data\n"  # released, never emptied
