"""The docker executor against a real dockerd: output, exits, volumes, ports, kills, re-attaching.

Every test runs as its own agent id; a fixture removes that agent's containers afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiodocker
import httpx
import pytest

from corral.agent import task_record
from corral.agent.executors.base import Executor, LaunchError, TaskDirs, TaskExit
from corral.agent.executors.docker import (
    DEFAULT_SOCKET,
    GONE_REASON,
    DockerExecutor,
    DockerHandle,
)
from corral.agent.executors.docker_config import AGENT_ID_LABEL
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState
from tests.support.images import ensure_test_image

T = TypeVar("T")
DEADLINE = 20.0  # seconds; generous, a container that needs it has hung
NO_DOCKER = "dockerd is not reachable on /var/run/docker.sock: install docker.io and start dockerd"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a fresh event loop."""
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def image() -> str:
    """The test image; skips without dockerd, except in CI, where that is a failure."""
    if not run(DockerExecutor.available()):
        if os.environ.get("CI") == "true":
            pytest.fail(NO_DOCKER)
        pytest.skip(NO_DOCKER)
    return ensure_test_image()


async def _containers(agent_id: str) -> list[dict[str, Any]]:
    async with aiodocker.Docker(url=DEFAULT_SOCKET) as docker:
        filters = json.dumps({"label": [f"{AGENT_ID_LABEL}={agent_id}"]})
        found = await docker.containers.list(all="1", filters=filters)
        return [{key: c[key] for key in ("Id", "Labels", "State")} for c in found]


async def _remove_all(agent_id: str) -> None:
    async with aiodocker.Docker(url=DEFAULT_SOCKET) as docker:
        for found in await _containers(agent_id):
            await docker.containers.container(found["Id"]).delete(force=True)


async def _image_id(name: str) -> str:
    async with aiodocker.Docker(url=DEFAULT_SOCKET) as docker:
        return str((await docker.images.inspect(name))["Id"])


async def _inspect(container_id: str) -> dict[str, Any]:
    async with aiodocker.Docker(url=DEFAULT_SOCKET) as docker:
        return await docker.containers.container(container_id).show()


@dataclass
class Agent:
    """One test's agent: its id, data dir, and how to build executors and launches for it."""

    image: str
    id: str
    data: Path

    def executor(self, **options: Any) -> DockerExecutor:
        """A docker executor of this agent, volumes allowed under its data dir."""
        options.setdefault("allowed_volumes", [self.data])
        return DockerExecutor(self.id, **options)

    def launch(self, docker: dict[str, Any] | None = None, **fields: Any) -> TaskLaunch:
        """A docker launch of the test image with a unique task id and small resources."""
        base: dict[str, Any] = {"task_id": f"test-{uuid.uuid4().hex[:12]}", "job": "tests"}
        section = {"image": self.image, **(docker or {})}
        return TaskLaunch.model_validate(
            {"cpus": 0.5, "mem": 64, **base, "driver": "docker", "docker": section, **fields}
        )

    def dirs(self, launch: TaskLaunch) -> TaskDirs:
        """Where ``launch`` lives on this agent."""
        return TaskDirs(self.data / "tasks" / launch.task_id)

    def containers(self) -> list[dict[str, Any]]:
        """This agent's containers, running or not (list entries, not inspect data)."""
        return run(_containers(self.id))


@pytest.fixture
def agent(image: str, tmp_path: Path) -> Iterator[Agent]:
    """A fresh agent id and data dir; its containers are removed after the test."""
    agent = Agent(image, f"test-agent-{uuid.uuid4().hex[:8]}", tmp_path)
    yield agent
    run(_remove_all(agent.id))


async def finish(handle: DockerHandle | TaskExit) -> TaskExit:
    """How the task ended, waiting at most ``DEADLINE`` seconds."""
    assert isinstance(handle, DockerHandle)
    return await asyncio.wait_for(handle.wait(), DEADLINE)


def run_task(agent: Agent, launch: TaskLaunch, **options: Any) -> TaskExit:
    """Start ``launch`` on a fresh executor of ``agent`` and wait for its end."""

    async def scenario() -> TaskExit:
        return await finish(await agent.executor(**options).start(launch, agent.dirs(launch)))

    return run(scenario())


def launch_error(agent: Agent, launch: TaskLaunch, **options: Any) -> str:
    """The reason the launch fails with."""
    with pytest.raises(LaunchError) as caught:
        run_task(agent, launch, **options)
    return str(caught.value)


def output(agent: Agent, launch: TaskLaunch, name: str = "stdout") -> str:
    """What the task wrote to its sandbox's ``stdout`` (or ``name``)."""
    return (agent.dirs(launch).sandbox / name).read_text()


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait until ``check()`` holds, at most ``DEADLINE`` seconds."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_the_test_image_is_made_once_and_calls_at_the_same_time_agree(image: str) -> None:
    before = run(_image_id(image))
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: ensure_test_image(image), range(2))) == [image, image]
    assert run(_image_id(image)) == before


def test_docker_is_not_available_where_no_daemon_answers(tmp_path: Path) -> None:
    assert run(DockerExecutor.available(f"unix://{tmp_path}/docker.sock")) is False


def test_the_executor_meets_the_executor_protocol_and_names_docker_in_its_limits(
    agent: Agent,
) -> None:
    executor: Executor = agent.executor()
    assert executor.driver == "docker"
    assert executor.limits().startswith("docker ")
    assert executor.limits().endswith(": cpus and memory enforced by Docker")


def test_output_lands_in_the_sandbox_stdout_and_stderr_separately(agent: Agent) -> None:
    task = agent.launch(shell="echo out; echo err >&2; echo more out")
    assert run_task(agent, task) == TaskExit(TaskState.FINISHED, 0, "exited with status 0")
    assert output(agent, task) == "out\nmore out\n"
    assert output(agent, task, "stderr") == "err\n"
    record = task_record.read(agent.dirs(task).root)
    assert record.launch is not None and record.launch["task_id"] == task.task_id
    assert record.container is not None and len(record.container) == 64


def test_a_container_exiting_with_3_fails_with_exit_code_3(agent: Agent) -> None:
    ended = run_task(agent, agent.launch(command=["sh", "-c", "exit 3"]))
    assert ended == TaskExit(TaskState.FAILED, 3, "exited with status 3")


def test_a_shell_string_runs_through_sh(agent: Agent) -> None:
    task = agent.launch(shell="echo host=$HOSTNAME && false")
    assert run_task(agent, task) == TaskExit(TaskState.FAILED, 1, "exited with status 1")
    assert output(agent, task).startswith("host=") and output(agent, task) != "host=\n"


def test_an_argv_reaches_the_program_unchanged_one_argument_each(agent: Agent) -> None:
    task = agent.launch(command=["echo", "a  b", "$HOME"])
    assert run_task(agent, task).state is TaskState.FINISHED
    assert output(agent, task) == "a  b $HOME\n"


def test_the_container_runs_exactly_the_command_of_the_spec(agent: Agent) -> None:
    shell = agent.launch(shell="echo $HOME && false")
    argv = agent.launch(command=["echo", "a b"])
    for task in (shell, argv):
        run_task(agent, task, keep_containers=True)
    configs = {c["Labels"]["corral.task_id"]: c["Id"] for c in agent.containers()}
    shell_config = run(_inspect(configs[shell.task_id]))["Config"]
    argv_config = run(_inspect(configs[argv.task_id]))["Config"]
    assert shell_config["Entrypoint"] == ["/bin/sh", "-c"]
    assert shell_config["Cmd"] == ["echo $HOME && false"]
    assert argv_config["Entrypoint"] is None and argv_config["Cmd"] == ["echo", "a b"]


def test_without_a_command_the_image_default_runs(agent: Agent) -> None:
    task = agent.launch()
    assert run_task(agent, task).state is TaskState.FINISHED
    assert output(agent, task) == "image default command\n"


def test_the_task_sees_its_ids_its_env_and_a_writable_sandbox(agent: Agent) -> None:
    script = 'echo "$CORRAL_TASK_ID $MESOS_SANDBOX $GREETING $(pwd) $(id -u)"; touch made'
    task = agent.launch({"user": "nobody"}, shell=script, env={"GREETING": "hi"}, workdir=".")
    agent.dirs(task).sandbox.mkdir(parents=True)
    agent.dirs(task).sandbox.chmod(0o777)  # the task runs as nobody
    assert run_task(agent, task).state is TaskState.FINISHED
    assert output(agent, task) == f"{task.task_id} /mnt/mesos/sandbox hi /mnt/mesos/sandbox 65534\n"
    assert (agent.dirs(task).sandbox / "made").exists()


def test_a_read_only_volume_can_be_read_and_not_written(agent: Agent) -> None:
    shared = agent.data / "shared"
    shared.mkdir()
    (shared / "input").write_text("data\n")
    volume = {"containerPath": "/in", "hostPath": str(shared), "mode": "RO"}
    task = agent.launch({"volumes": [volume]}, shell="cat /in/input; touch /in/new")
    ended = run_task(agent, task)
    assert ended.state is TaskState.FAILED
    assert output(agent, task) == "data\n"
    assert "Read-only file system" in output(agent, task, "stderr")
    assert not (shared / "new").exists()


def test_a_file_written_to_a_read_write_volume_appears_on_the_host(agent: Agent) -> None:
    shared = agent.data / "results"
    shared.mkdir()
    volume = {"containerPath": "/out", "hostPath": str(shared), "mode": "RW"}
    task = agent.launch({"volumes": [volume]}, shell="echo 42 > /out/answer")
    assert run_task(agent, task).state is TaskState.FINISHED
    assert (shared / "answer").read_text() == "42\n"


def test_a_volume_outside_the_allowed_paths_is_refused_and_no_container_is_created(
    agent: Agent,
) -> None:
    volume = {"containerPath": "/etc-of-host", "hostPath": "/etc"}
    reason = launch_error(agent, agent.launch({"volumes": [volume]}))
    assert reason == f"volumes[0].host_path /etc is not under an allowed path ({agent.data})"
    assert agent.containers() == []


def test_privileged_settings_are_refused_unless_the_agent_allows_them(agent: Agent) -> None:
    reason = launch_error(agent, agent.launch({"privileged": True}, command=["true"]))
    assert reason.startswith("privileged needs a privileged container")
    cap_add = {"parameters": [{"key": "cap-add", "value": "NET_ADMIN"}]}
    reason = launch_error(agent, agent.launch(cap_add, command=["true"]))
    assert reason.startswith("parameters[0] (cap-add) needs a privileged container")
    assert agent.containers() == []
    # (Not `privileged: true` itself: this machine's own capability set is not complete.)
    allowed = agent.launch(cap_add, command=["true"])
    assert run_task(agent, allowed, allow_privileged=True, keep_containers=True).exit_code == 0
    (kept,) = agent.containers()
    assert run(_inspect(kept["Id"]))["HostConfig"]["CapAdd"] == ["NET_ADMIN"]


def test_an_image_that_cannot_be_pulled_fails_the_launch_naming_it(agent: Agent) -> None:
    task = agent.launch({"image": "corral-test/no-such-image:1"})
    reason = launch_error(agent, task)
    assert reason.startswith("cannot pull image corral-test/no-such-image:1: ")
    assert agent.containers() == []


def test_force_pull_must_pull_even_when_the_image_is_here(agent: Agent) -> None:
    reason = launch_error(agent, agent.launch({"forcePullImage": True}, command=["true"]))
    assert reason.startswith(f"cannot pull image {agent.image}: ")


def test_a_command_missing_from_the_image_fails_the_launch_with_dockers_message(
    agent: Agent,
) -> None:
    reason = launch_error(agent, agent.launch(command=["no-such-program"]))
    assert reason.startswith("cannot start the container: ")
    assert '"no-such-program": executable file not found' in reason
    assert agent.containers() == []  # created, then removed


def test_a_container_beyond_its_memory_limit_fails_with_memory_limit_exceeded(
    agent: Agent,
) -> None:
    # dd's block buffer is one allocation that it fills, so it really holds 300 MiB.
    task = agent.launch(command=["dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1"])
    assert run_task(agent, task) == TaskExit(
        TaskState.FAILED, None, "memory limit exceeded (64 MiB)"
    )


TRAP_TERM = "trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.1; done"


def test_a_container_that_outlives_sigterm_is_killed_with_sigkill_after_the_grace(
    agent: Agent,
) -> None:
    async def scenario() -> tuple[TaskExit, float]:
        task = agent.launch(shell=TRAP_TERM)
        handle = await agent.executor().start(task, agent.dirs(task))
        await eventually(lambda: "ready" in output(agent, task), "the trap to be set")
        began = time.monotonic()
        await handle.kill(1.0)
        # Kill only schedules the signals: it returns within the grace, not after it.
        assert time.monotonic() - began < 1.0
        await handle.kill(1.0)  # idempotent
        ended = await finish(handle)
        return ended, time.monotonic() - began

    ended, took = run(scenario())
    assert ended == TaskExit(TaskState.KILLED, None, "killed (SIGKILL after grace)")
    assert 1.0 <= took < 15.0  # not before the grace; the bound only says it came at all


def test_a_container_that_stops_on_sigterm_is_killed_by_sigterm(agent: Agent) -> None:
    async def scenario() -> TaskExit:
        script = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
        task = agent.launch(shell=script)
        handle = await agent.executor().start(task, agent.dirs(task))
        await eventually(lambda: "ready" in output(agent, task), "the trap to be set")
        await handle.kill(10.0)
        ended = await finish(handle)
        assert output(agent, task) == "ready\nbye\n"
        return ended

    assert run(scenario()) == TaskExit(TaskState.KILLED, 0, "killed (SIGTERM)")


def test_output_is_copied_while_the_container_runs(agent: Agent) -> None:
    async def scenario() -> None:
        task = agent.launch(shell="echo first; sleep 30")
        handle = await agent.executor().start(task, agent.dirs(task))
        await eventually(lambda: output(agent, task) == "first\n", "the first line")
        await handle.kill(0)
        assert (await finish(handle)).state is TaskState.KILLED

    run(scenario())


def test_a_bridge_port_with_host_port_0_gets_a_port_of_the_range_that_serves(
    agent: Agent,
) -> None:
    async def scenario() -> None:
        mapping = {"containerPort": 8080, "hostPort": 0, "name": "http"}
        script = (
            'echo "$PORT0 $PORT_HTTP" > "$MESOS_SANDBOX/ports"; '
            'exec httpd -f -p 8080 -h "$MESOS_SANDBOX"'
        )
        task = agent.launch({"portMappings": [mapping]}, shell=script)
        handle = await agent.executor(port_range=(31000, 32000)).start(task, agent.dirs(task))
        ports = agent.dirs(task).sandbox / "ports"
        await eventually(lambda: ports.exists() and ports.read_text().endswith("\n"), "PORT0")
        port, named = map(int, ports.read_text().split())
        assert 31000 <= port <= 32000 and named == port
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    answer = await client.get(f"http://127.0.0.1:{port}/ports")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"nothing answers on port {port}")
        assert answer.status_code == 200 and answer.text == f"{port} {port}\n"
        await handle.kill(0)
        await finish(handle)

    run(scenario())


def test_on_the_host_network_port0_is_a_host_port_of_the_range(agent: Agent) -> None:
    task = agent.launch(
        {"network": "HOST", "portMappings": [{"containerPort": 80}]}, shell="echo $PORT0"
    )
    assert run_task(agent, task, port_range=(32100, 32199)).state is TaskState.FINISHED
    assert 32100 <= int(output(agent, task)) <= 32199


def test_containers_are_removed_after_the_end_unless_kept(agent: Agent) -> None:
    run_task(agent, agent.launch(command=["true"]))
    assert agent.containers() == []
    run_task(agent, agent.launch(command=["true"]), keep_containers=True)
    assert [c["State"] for c in agent.containers()] == ["exited"]


COUNT_SCRIPT = "for i in $(seq 1 40); do echo out $i; echo err $i >&2; sleep 0.05; done; exit 5"


def counted(stream: str) -> str:
    """What ``COUNT_SCRIPT`` writes to ``stream``."""
    return "".join(f"{stream} {i}\n" for i in range(1, 41))


def test_recover_reattaches_to_a_running_container_and_copies_the_rest_once(
    agent: Agent,
) -> None:
    async def scenario() -> TaskExit:
        task = agent.launch(shell=COUNT_SCRIPT)
        first = await agent.executor().start(task, agent.dirs(task))
        await eventually(lambda: "out 5\n" in output(agent, task), "some output")
        await first.detach()  # the agent stops; the container goes on writing
        await asyncio.sleep(0.3)
        found = await agent.executor().recover(task, agent.dirs(task))
        assert isinstance(found, DockerHandle)
        ended = await finish(found)
        assert output(agent, task) == counted("out")
        assert output(agent, task, "stderr") == counted("err")
        return ended

    assert run(scenario()) == TaskExit(TaskState.FAILED, 5, "exited with status 5")
    assert agent.containers() == []


def test_recover_of_a_container_that_ended_meanwhile_gives_its_exit_and_all_output(
    agent: Agent,
) -> None:
    async def scenario() -> TaskExit | DockerHandle:
        task = agent.launch(shell="echo before; sleep 0.5; echo after; exit 7")
        first = await agent.executor().start(task, agent.dirs(task))
        await eventually(lambda: output(agent, task) == "before\n", "the first line")
        await first.detach()
        root = agent.dirs(task).root
        container = task_record.read(root).container
        assert container is not None
        async with aiodocker.Docker(url=DEFAULT_SOCKET) as docker:
            await docker.containers.container(container).wait()
        # Its note of the container gone, it is found by its label all the same.
        launched = task_record.path(root).read_text().splitlines()[0]
        task_record.path(root).write_text(launched + "\n")
        found = await agent.executor().recover(task, agent.dirs(task))
        assert output(agent, task) == "before\nafter\n"
        return found

    assert run(scenario()) == TaskExit(TaskState.FAILED, 7, "exited with status 7")
    assert agent.containers() == []


def test_recover_without_a_container_says_it_is_gone(agent: Agent) -> None:
    task = agent.launch(command=["true"])
    found = run(agent.executor().recover(task, agent.dirs(task)))
    assert found == TaskExit(TaskState.FAILED, None, GONE_REASON)
