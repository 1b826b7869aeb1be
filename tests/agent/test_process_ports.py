"""Host ports of process tasks: the variables the task sees, fixed ports, release, re-adoption,
and commands run beside a task (what COMMAND health checks use)."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from corral.agent import task_record
from corral.agent.executors.base import CommandResult, LaunchError, TaskDirs, TaskExit
from corral.agent.executors.process import ProcessExecutor, ProcessHandle
from corral.agent.ports import PortPool
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState
from tests.agent.helpers import DEADLINE, free_range, launch

ECHO_PORTS = 'echo "$PORT0 $PORT1 $PORT_WEB $PORT $PORTS"'


@pytest.fixture
def dirs(tmp_path: Path) -> TaskDirs:
    """A task's directories."""
    return TaskDirs(tmp_path / "task")


async def finish(handle: ProcessHandle | TaskExit) -> TaskExit:
    """How the task ended, waiting at most ``DEADLINE`` seconds."""
    assert isinstance(handle, ProcessHandle)
    return await asyncio.wait_for(handle.wait(), DEADLINE)


def test_a_task_gets_distinct_ports_named_ones_and_a_required_one_until_it_ends(
    dirs: TaskDirs,
) -> None:
    first, last = free_range(4)
    executor = ProcessExecutor(port_pool=PortPool(first, last - 1))
    ports = [{"port": 0, "name": "web"}, {"port": 0}, {"port": last, "name": "admin"}]
    task = launch(shell=f'{ECHO_PORTS} "$PORT2 $PORT_ADMIN"', ports=ports)

    async def scenario() -> tuple[list[int], TaskExit]:
        handle = await executor.start(task, dirs)
        given = executor.ports(task.task_id)
        return given, await finish(handle)

    given, ended = asyncio.run(scenario())
    assert ended.state is TaskState.FINISHED
    assert given == [first, first + 1, last]
    port0, port1, web, port, all_ports, port2, admin = (dirs.sandbox / "stdout").read_text().split()
    assert (port0, port1, port2) == (str(first), str(first + 1), str(last))
    assert (web, port, admin) == (port0, port0, port2)
    assert all_ports == f"{first},{first + 1},{last}"
    assert executor.ports(task.task_id) == []  # given back at the end
    assert task_record.read(dirs.root).ports == [first, first + 1, last]


def test_a_task_without_ports_gets_no_port_variables(dirs: TaskDirs) -> None:
    executor = ProcessExecutor(port_pool=PortPool(*free_range(1)))
    task = launch(shell='echo "[$PORT0][$PORT][$PORTS]"', env={"PORT0": "mine"})

    async def scenario() -> TaskExit:
        return await finish(await executor.start(task, dirs))

    assert asyncio.run(scenario()).state is TaskState.FINISHED
    assert (dirs.sandbox / "stdout").read_text() == "[mine][][]\n"


def test_a_fixed_port_taken_on_the_host_fails_the_launch_and_starts_nothing(
    dirs: TaskDirs,
) -> None:
    first, last = free_range(2)
    executor = ProcessExecutor(port_pool=PortPool(first, first))
    task = launch(shell="true", ports=[{"port": 0}, {"port": last}])
    with socket.socket() as other:
        other.bind(("", last))
        other.listen()
        with pytest.raises(LaunchError, match=f"^host port {last} is in use$"):
            asyncio.run(executor.start(task, dirs))
    assert task_record.read(dirs.root).pid is None
    assert executor.ports(task.task_id) == []


def test_executors_sharing_a_pool_never_hand_out_the_same_port(tmp_path: Path) -> None:
    pool = PortPool(*free_range(1))
    one, other = ProcessExecutor(port_pool=pool), ProcessExecutor(port_pool=pool)
    first, second = launch(shell="sleep 30", ports=[{}]), launch(shell="true", ports=[{}])

    async def scenario() -> None:
        handle = await one.start(first, TaskDirs(tmp_path / "one"))
        try:
            with pytest.raises(LaunchError, match="no free host port"):
                await other.start(second, TaskDirs(tmp_path / "other"))
        finally:
            await handle.kill(0)
            await finish(handle)
        assert (
            await finish(await other.start(second, TaskDirs(tmp_path / "other")))
        ).exit_code == 0

    asyncio.run(scenario())


def test_a_restarted_agent_holds_the_ports_of_a_task_it_recovers(dirs: TaskDirs) -> None:
    first, last = free_range(3)
    task = launch(shell="sleep 30", ports=[{"port": 0, "name": "web"}])

    async def scenario() -> None:
        handle = await ProcessExecutor(port_pool=PortPool(first, last)).start(task, dirs)
        handle.detach()  # the agent goes away, the task runs on
        pool = PortPool(first, last)
        executor = ProcessExecutor(port_pool=pool)
        found = await executor.recover(task, dirs)
        assert isinstance(found, ProcessHandle)
        assert executor.ports(task.task_id) == [first]
        assert pool.reserve("other", [task.ports[0]]) == [first + 1]  # not the task's
        # Commands beside the recovered task see its ports again.
        seen = await found.run_command('echo "$PORT_WEB"', DEADLINE)
        assert seen == CommandResult(0, str(first))
        await found.kill(0)
        await finish(found)
        assert executor.ports(task.task_id) == []

    asyncio.run(scenario())


# --- commands beside a task


async def started(task: TaskLaunch, dirs: TaskDirs) -> ProcessHandle:
    """``task`` started on an executor with a pool of its own."""
    return await ProcessExecutor(port_pool=PortPool(*free_range(2))).start(task, dirs)


def test_a_command_runs_in_the_sandbox_with_the_tasks_environment(dirs: TaskDirs) -> None:
    task = launch(shell="sleep 30", env={"GREETING": "hi"}, ports=[{"port": 0}])

    async def scenario() -> CommandResult:
        handle = await started(task, dirs)
        try:
            return await handle.run_command('echo "$GREETING $PORT0 $(pwd)"; exit 3', DEADLINE)
        finally:
            await handle.kill(0)
            await finish(handle)

    result = asyncio.run(scenario())
    greeting, port, cwd = result.output.split()
    assert (result.exit_code, greeting, cwd) == (3, "hi", str(dirs.sandbox))
    assert port.isdigit()


def test_a_command_over_its_timeout_is_killed_with_what_it_started(dirs: TaskDirs) -> None:
    task = launch(shell="sleep 30")

    async def scenario() -> tuple[CommandResult, int]:
        handle = await started(task, dirs)
        try:
            command = "sleep 60 & echo $! > child; echo started; wait"
            result = await handle.run_command(command, 0.5)
            return result, int((dirs.sandbox / "child").read_text())
        finally:
            await handle.kill(0)
            await finish(handle)

    result, child = asyncio.run(scenario())
    assert result == CommandResult(None, error="did not finish within 0.5s")
    asyncio.run(process_ends(child))


async def process_ends(pid: int) -> None:
    """Return once ``pid`` has exited (a pidfd turns readable then, also for a zombie)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    loop.add_reader(pidfd, ended.set)
    try:
        await asyncio.wait_for(ended.wait(), DEADLINE)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def test_a_command_after_the_task_ended_does_not_run(dirs: TaskDirs) -> None:
    async def scenario() -> CommandResult:
        handle = await started(launch(shell="true"), dirs)
        await finish(handle)
        return await handle.run_command("touch ran", DEADLINE)

    assert asyncio.run(scenario()) == CommandResult(None, error="the task has ended")
    assert not (dirs.sandbox / "ran").exists()
