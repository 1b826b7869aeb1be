"""The process executor with real processes: output, exit states, kills, limits, re-attaching,
the task keeper."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral.agent import task_record
from corral.agent.cgroups import Cgroups, TaskCgroup
from corral.agent.executors.base import Executor, LaunchError, TaskDirs, TaskExit
from corral.agent.executors.process import (
    LOST_REASON,
    ProcessExecutor,
    ProcessHandle,
    parse_stat_start_time,
)
from corral.agent.keeper_client import KeeperClient, keeper_name
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState

T = TypeVar("T")
DEADLINE = 15.0  # seconds; generous, a task that needs it has hung


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a fresh event loop."""
    return asyncio.run(coro)


def task(**fields: Any) -> TaskLaunch:
    """A launch with a unique id, small resources and the given fields."""
    base: dict[str, Any] = {"task_id": f"test-{uuid.uuid4().hex[:12]}", "job": "tests"}
    return TaskLaunch.model_validate({"cpus": 0.5, "mem": 128, **base, **fields})


async def finish(handle: ProcessHandle | TaskExit) -> TaskExit:
    """How the task ended, waiting for it at most ``DEADLINE`` seconds."""
    assert isinstance(handle, ProcessHandle)
    return await asyncio.wait_for(handle.wait(), DEADLINE)


async def run_task(executor: ProcessExecutor, dirs: TaskDirs, **fields: Any) -> TaskExit:
    """Start a task and wait for its end."""
    return await finish(await executor.start(task(**fields), dirs))


async def finish_started(launch: TaskLaunch, dirs: TaskDirs) -> TaskExit:
    """Start ``launch`` with a fresh executor and wait for its end."""
    return await finish(await ProcessExecutor().start(launch, dirs))


async def readable(fd: int) -> None:
    """Wait until ``fd`` is readable, at most ``DEADLINE`` seconds."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(ready, DEADLINE)
    finally:
        loop.remove_reader(fd)


async def process_ends(pid: int) -> None:
    """Return once ``pid`` has exited (a pidfd turns readable then, also for zombies)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await readable(pidfd)
    finally:
        os.close(pidfd)


class Fifo:
    """A named pipe the test holds open for reading and writing, so neither side blocks on open."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    async def read_line(self) -> str:
        """The next line a task wrote, waiting at most ``DEADLINE`` seconds."""
        data = b""
        while not data.endswith(b"\n"):
            await readable(self.fd)
            data += os.read(self.fd, 4096)
        return data.decode().strip()

    def write(self, text: str) -> None:
        """Hand the task a line."""
        os.write(self.fd, text.encode())


@pytest.fixture
def dirs(tmp_path: Path) -> TaskDirs:
    """A task's directories, the sandbox already there so tests can put pipes in it."""
    task_dirs = TaskDirs(tmp_path / "task")
    task_dirs.sandbox.mkdir(parents=True)
    return task_dirs


@pytest.fixture
def fifo(dirs: TaskDirs) -> Iterator[Callable[[str], Fifo]]:
    """Make named pipes in the sandbox; they are closed after the test."""
    made: list[Fifo] = []

    def make(name: str) -> Fifo:
        made.append(Fifo(dirs.sandbox / name))
        return made[-1]

    yield make
    for pipe in made:
        os.close(pipe.fd)


def drop_from_record(dirs: TaskDirs, key: str) -> None:
    """Rewrite the task's record without its lines holding ``key``."""
    lines = task_record.path(dirs.root).read_text().splitlines(keepends=True)
    kept = [line for line in lines if key not in json.loads(line)]
    task_record.path(dirs.root).write_text("".join(kept))


def files_of(root: Path) -> list[str]:
    """Every file and directory under ``root``, relative to it."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture(params=["cgroups", "no-cgroups"])
def executor(request: pytest.FixtureRequest) -> ProcessExecutor:
    """The executor with the cgroups this host offers, and one that uses none."""
    if request.param == "cgroups":
        return ProcessExecutor()
    return ProcessExecutor(cgroups=Cgroups.disabled("turned off by the test"))


def require_cgroups(executor: ProcessExecutor) -> None:
    """Skip when the host gives no writable cgroups; in CI that is a failure, not a skip."""
    if not executor.limits().startswith("cgroup"):
        reason = f"needs writable cgroups with memory and cpu; here: {executor.limits()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def test_the_executor_satisfies_the_executor_protocol() -> None:
    executor: Executor = ProcessExecutor()
    assert executor.driver == "process"
    assert executor.limits()


def test_what_a_command_prints_lands_in_the_sandbox(
    executor: ProcessExecutor, dirs: TaskDirs
) -> None:
    ended = run(run_task(executor, dirs, command=["echo", "hello", "world"]))
    assert ended == TaskExit(TaskState.FINISHED, 0, "exited with status 0")
    assert (dirs.sandbox / "stdout").read_text() == "hello world\n"
    assert (dirs.sandbox / "stderr").read_text() == ""
    recorded = task_record.read(dirs.root)
    assert recorded.launch is not None
    assert TaskLaunch.model_validate(recorded.launch).job == "tests"


def test_a_shell_string_runs_under_sh_with_both_output_streams(dirs: TaskDirs) -> None:
    ended = run(run_task(ProcessExecutor(), dirs, shell="echo out && echo err >&2; exit 0"))
    assert ended.state == TaskState.FINISHED
    assert (dirs.sandbox / "stdout").read_text() == "out\n"
    assert (dirs.sandbox / "stderr").read_text() == "err\n"


def test_a_non_zero_exit_fails_the_task_with_its_status(dirs: TaskDirs) -> None:
    ended = run(run_task(ProcessExecutor(), dirs, shell="exit 3"))
    assert ended == TaskExit(TaskState.FAILED, 3, "exited with status 3")


def test_a_task_starts_with_the_default_signal_dispositions(dirs: TaskDirs) -> None:
    # Python ignores SIGPIPE and SIGXFSZ; a task must not inherit that from the agent, or
    # `yes | head -1` ends with "yes: standard output: Broken pipe" instead of quietly.
    shell = "yes | head -n 1; sed -n 's/^SigIgn:\\t//p' /proc/self/status"
    ended = run(run_task(ProcessExecutor(), dirs, shell=shell))
    assert ended.state == TaskState.FINISHED
    assert (dirs.sandbox / "stderr").read_text() == ""
    first, ignored = (dirs.sandbox / "stdout").read_text().split()
    assert first == "y"
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not int(ignored, 16) & 1 << (sig - 1), sig.name


def test_a_shell_command_that_is_not_found_says_so(dirs: TaskDirs) -> None:
    ended = run(run_task(ProcessExecutor(), dirs, shell="no-such-program-corral"))
    assert (ended.state, ended.exit_code) == (TaskState.FAILED, 127)
    assert "command not found" in ended.reason


def test_a_task_killed_by_a_signal_it_did_not_ask_for_fails_naming_the_signal(
    dirs: TaskDirs,
) -> None:
    ended = run(run_task(ProcessExecutor(), dirs, shell="kill -SEGV $$"))
    assert ended == TaskExit(TaskState.FAILED, None, "terminated by signal SIGSEGV")


def test_a_missing_program_is_a_launch_error_naming_it(dirs: TaskDirs) -> None:
    with pytest.raises(LaunchError, match="command not found: no-such-program-corral"):
        run(ProcessExecutor().start(task(command=["no-such-program-corral", "x"]), dirs))
    assert task_record.read(dirs.root).pid is None


def test_a_program_without_execute_permission_is_a_launch_error(dirs: TaskDirs) -> None:
    (dirs.sandbox / "script").write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(LaunchError, match="not executable: ./script"):
        run(ProcessExecutor().start(task(command=["./script"]), dirs))


def test_a_working_directory_that_does_not_exist_is_a_launch_error(dirs: TaskDirs) -> None:
    with pytest.raises(LaunchError, match="working directory does not exist: data"):
        run(ProcessExecutor().start(task(shell="true", workdir="data"), dirs))


def test_a_relative_working_directory_is_inside_the_sandbox(dirs: TaskDirs) -> None:
    (dirs.sandbox / "data").mkdir()
    run(run_task(ProcessExecutor(), dirs, command=["pwd"], workdir="data"))
    assert (dirs.sandbox / "stdout").read_text() == f"{dirs.sandbox / 'data'}\n"


def test_the_task_gets_its_env_and_the_sandbox_but_not_the_agents_other_variables(
    dirs: TaskDirs,
) -> None:
    executor = ProcessExecutor(agent_env={"PATH": "/usr/bin:/bin", "AGENT_SECRET": "x"})
    script = 'printf "%s|%s|%s|%s" "$GREETING" "$CORRAL_SANDBOX" "$MESOS_SANDBOX" "$AGENT_SECRET"'
    run(run_task(executor, dirs, shell=script, env={"GREETING": "hello there"}))
    sandbox = str(dirs.sandbox)
    assert (dirs.sandbox / "stdout").read_text() == f"hello there|{sandbox}|{sandbox}|"


def test_a_task_given_gpus_sees_exactly_those_in_cuda_visible_devices(dirs: TaskDirs) -> None:
    script = 'printf "%s|%s|%s" "$CUDA_VISIBLE_DEVICES" "$CORRAL_GPUS" "$CUDA_DEVICE_ORDER"'
    # The task's own value loses: the GPUs are the agent's to hand out.
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    run(run_task(ProcessExecutor(), dirs, shell=script, gpus=2, gpu_devices=[1, 3], env=env))
    assert (dirs.sandbox / "stdout").read_text() == "1,3|1,3|PCI_BUS_ID"


def test_a_task_given_no_gpu_gets_no_gpu_variables(dirs: TaskDirs) -> None:
    script = 'printf "%s|%s" "${CUDA_VISIBLE_DEVICES-unset}" "${CORRAL_GPUS-unset}"'
    run(run_task(ProcessExecutor(), dirs, shell=script))
    assert (dirs.sandbox / "stdout").read_text() == "unset|unset"


def test_waiting_twice_gives_the_same_answer(dirs: TaskDirs) -> None:
    async def scenario() -> tuple[TaskExit, TaskExit]:
        handle = await ProcessExecutor().start(task(shell="exit 4"), dirs)
        return await finish(handle), await finish(handle)

    first, second = run(scenario())
    assert first == second == TaskExit(TaskState.FAILED, 4, "exited with status 4")


class HeldCgroups(Cgroups):
    """No limits; creating a task's cgroups waits until the event loop has answered, as a
    slow disk would hold it (a real slow disk cannot be had on demand)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, entered: asyncio.Event) -> None:
        super().__init__(None, {}, "none: held by the test")
        self.loop, self.entered = loop, entered
        self.let_go = threading.Event()
        self.let_go_in_time = False

    def create(self, mem_mib: int, cpus: float) -> TaskCgroup | None:
        self.loop.call_soon_threadsafe(self.entered.set)
        self.let_go_in_time = self.let_go.wait(DEADLINE)
        return None


def test_starting_a_task_leaves_the_event_loop_free_while_its_files_and_cgroups_are_made(
    dirs: TaskDirs,
) -> None:
    """A burst of launches must not hold up the agent's channel (its heartbeats)."""

    async def scenario() -> tuple[bool, TaskExit]:
        entered = asyncio.Event()
        cgroups = HeldCgroups(asyncio.get_running_loop(), entered)
        starting = asyncio.create_task(
            ProcessExecutor(cgroups=cgroups).start(task(shell="true"), dirs)
        )
        await asyncio.wait_for(entered.wait(), DEADLINE)  # the loop runs while create waits
        cgroups.let_go.set()
        ended = await finish(await starting)
        return cgroups.let_go_in_time, ended

    let_go, ended = run(scenario())
    assert let_go
    assert ended.state is TaskState.FINISHED


def test_a_task_that_ends_on_sigterm_is_killed(dirs: TaskDirs, fifo: Callable[[str], Fifo]) -> None:
    ready = fifo("ready")

    async def scenario() -> TaskExit:
        handle = await ProcessExecutor().start(
            task(shell='echo up > "$CORRAL_SANDBOX/ready"; exec sleep 1000'), dirs
        )
        await ready.read_line()
        await handle.kill(grace=DEADLINE)
        return await finish(handle)

    assert run(scenario()) == TaskExit(TaskState.KILLED, None, "killed (SIGTERM)")


def test_a_task_ignoring_sigterm_is_sigkilled_after_the_grace_with_its_children(
    executor: ProcessExecutor, dirs: TaskDirs, fifo: Callable[[str], Fifo]
) -> None:
    ready = fifo("ready")
    script = 'trap "" TERM; sleep 1000 & echo $! > "$CORRAL_SANDBOX/ready"; wait'

    async def scenario() -> tuple[TaskExit, float]:
        loop = asyncio.get_running_loop()
        handle = await executor.start(task(shell=script), dirs)
        child = int(await ready.read_line())
        began = loop.time()
        await handle.kill(grace=0.3)
        await handle.kill(grace=0.3)  # idempotent: one SIGTERM, the same deadline
        ended = await finish(handle)
        waited = loop.time() - began
        await process_ends(child)
        await handle.kill(grace=0)  # after the end: nothing to do
        return ended, waited

    ended, waited = run(scenario())
    assert ended == TaskExit(TaskState.KILLED, None, "killed (SIGKILL after grace)")
    assert waited >= 0.3


def test_processes_left_behind_by_a_task_are_killed_when_it_ends(
    executor: ProcessExecutor, dirs: TaskDirs, fifo: Callable[[str], Fifo]
) -> None:
    ready = fifo("ready")

    async def scenario() -> TaskExit:
        handle = await executor.start(
            task(shell='sleep 1000 & echo $! > "$CORRAL_SANDBOX/ready"; exit 0'), dirs
        )
        child = int(await ready.read_line())
        ended = await finish(handle)
        await process_ends(child)
        return ended

    assert run(scenario()).state == TaskState.FINISHED


def test_a_task_over_its_memory_limit_fails_naming_the_limit(dirs: TaskDirs) -> None:
    executor = ProcessExecutor()
    require_cgroups(executor)
    hog = [sys.executable, "-c", "b = bytearray(300 * 1024 * 1024)"]
    ended = run(run_task(executor, dirs, command=hog, mem=64))
    assert ended.state == TaskState.FAILED
    assert ended.reason == "memory limit exceeded (64 MiB)"
    recorded = task_record.read(dirs.root).cgroup
    assert recorded is not None
    cgroup = TaskCgroup.load(recorded)
    # Emptied by the end: kept for a later task then (no kill of its counted against it), or
    # removed.
    assert not cgroup.pids()
    executor.close()


def test_a_tasks_cpu_quota_holds_once_the_keeper_has_left_its_cgroups(
    dirs: TaskDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The keeper spawns from inside the task's cgroups: under the task's quota (1 ms of CPU
    # per 100 ms here), the exec of the task would throttle the keeper, and every start after.
    executor = ProcessExecutor()
    require_cgroups(executor)
    quotas: list[str] = []
    real_spawn = KeeperClient.spawn

    def quota_file(request: dict[str, Any]) -> Path:
        dirs_ = [Path(procs).parent for procs in request["join"]]
        files = [d / "cpu.cfs_quota_us" for d in dirs_] + [d / "cpu.max" for d in dirs_]
        return next(f for f in files if f.exists())

    async def spying(self: KeeperClient, request: dict[str, Any]) -> tuple[int, int]:
        quotas.append(quota_file(request).read_text().split()[0])
        answer = await real_spawn(self, request)
        quotas.append(quota_file(request).read_text().split()[0])
        return answer

    monkeypatch.setattr(KeeperClient, "spawn", spying)

    async def scenario() -> tuple[str, TaskExit]:
        handle = await executor.start(task(command=["true"], cpus=0.01), dirs)
        assert isinstance(handle, ProcessHandle)
        recorded = task_record.read(dirs.root).cgroup
        assert recorded is not None
        quota = quota_file({"join": TaskCgroup.load(recorded).procs_files()})
        return quota.read_text().split()[0], await finish(handle)

    held, ended = run(scenario())
    assert quotas in (["-1", "-1"], ["max", "max"])  # none while the keeper was inside
    assert held == "1000"  # 0.01 of the 100 ms period, once it had left
    assert ended.state == TaskState.FINISHED


def _keeper_pid(tasks_dir: Path) -> int:
    name = keeper_name(tasks_dir).encode()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and name in (entry / "cmdline").read_bytes():
                return int(entry.name)
    raise AssertionError("no keeper runs")


def test_when_a_burst_of_tasks_is_started_the_keeper_is_in_none_of_their_cgroups(
    tmp_path: Path,
) -> None:
    # The keeper spawns from inside each task's cgroups and goes home once per burst: before
    # it answers, so that nobody kills a task's cgroup (or sets its quota) with it inside.
    executor = ProcessExecutor()
    require_cgroups(executor)
    all_dirs = [TaskDirs(tmp_path / "tasks" / f"t{i}") for i in range(8)]

    async def scenario() -> tuple[list[tuple[set[int], int]], str]:
        handles = await asyncio.gather(
            *(executor.start(task(command=["sleep", "30"]), d) for d in all_dirs)
        )
        keeper = _keeper_pid(tmp_path / "tasks")
        members = []
        for handle, d in zip(handles, all_dirs, strict=True):
            recorded = task_record.read(d.root).cgroup
            assert recorded is not None
            members.append((TaskCgroup.load(recorded).pids(), handle.pid))
        keeper_cgroups = Path(f"/proc/{keeper}/cgroup").read_text()
        for handle in handles:
            await handle.kill(0)
            await finish(handle)
        return members, keeper_cgroups

    members, keeper_cgroups = run(scenario())
    for pids, pid in members:
        assert pids == {pid}  # the task alone: not the keeper
    assert "/corral/" not in keeper_cgroups  # home, in none of the tasks' cgroups


def test_a_new_executor_recovers_a_running_task_and_gets_its_status(
    dirs: TaskDirs, fifo: Callable[[str], Fifo]
) -> None:
    go = fifo("go")
    launch = task(shell='read line < "$CORRAL_SANDBOX/go"; exit 7')

    async def scenario() -> TaskExit:
        handle = await ProcessExecutor().start(launch, dirs)
        handle.detach()  # the agent goes away, the task runs on
        recovered = await ProcessExecutor().recover(launch, dirs)
        assert isinstance(recovered, ProcessHandle)
        assert recovered.pid == handle.pid
        go.write("go\n")
        return await finish(recovered)

    assert run(scenario()) == TaskExit(TaskState.FAILED, 7, "exited with status 7")


AGENT = """
import asyncio, sys
from pathlib import Path
from corral.agent.executors.base import TaskDirs
from corral.agent.executors.process import ProcessExecutor
from corral.spec.protocol import TaskLaunch

async def main() -> None:
    launch = TaskLaunch.model_validate_json(sys.argv[2])
    handle = await ProcessExecutor().start(launch, TaskDirs(Path(sys.argv[1])))
    handle.detach()

asyncio.run(main())
"""


def test_an_agent_in_a_new_process_recovers_the_task_and_reads_its_recorded_status(
    dirs: TaskDirs, fifo: Callable[[str], Fifo]
) -> None:
    go = fifo("go")
    launch = task(shell='read line < "$CORRAL_SANDBOX/go"; exit 9')
    # An earlier agent process starts the task and exits: the task is no child of this one.
    agent = [sys.executable, "-c", AGENT, str(dirs.root), launch.model_dump_json()]
    subprocess.run(agent, check=True, timeout=DEADLINE)

    async def scenario() -> TaskExit:
        recovered = await ProcessExecutor().recover(launch, dirs)
        go.write("go\n")
        return await finish(recovered)

    assert run(scenario()) == TaskExit(TaskState.FAILED, 9, "exited with status 9")


def test_recovering_an_ended_task_answers_its_status_from_the_record(dirs: TaskDirs) -> None:
    launch = task(shell="exit 5")
    run(finish_started(launch, dirs))
    recovered = run(ProcessExecutor().recover(launch, dirs))
    assert recovered == TaskExit(TaskState.FAILED, 5, "exited with status 5")


def test_recovering_an_ended_task_without_a_recorded_status_fails_it_as_lost(
    dirs: TaskDirs,
) -> None:
    launch = task(shell="exit 0")
    run(finish_started(launch, dirs))
    drop_from_record(dirs, "exit")  # the wrapper was SIGKILLed before it could write it
    recovered = run(ProcessExecutor().recover(launch, dirs))
    assert recovered == TaskExit(TaskState.FAILED, None, LOST_REASON)


def test_recovering_does_not_mistake_a_new_process_with_the_same_pid_for_the_task(
    dirs: TaskDirs,
) -> None:
    launch = task(shell="exit 0")
    run(finish_started(launch, dirs))
    # This test's own process stands in for a stranger that got the task's pid.
    task_record.append(dirs.root, pid=[os.getpid(), 1])
    recovered = run(ProcessExecutor().recover(launch, dirs))
    assert recovered == TaskExit(TaskState.FINISHED, 0, "exited with status 0")


def test_a_task_makes_its_directory_sandbox_output_files_and_one_record(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    # Each file or directory made costs the agent 0.1-0.3 ms on a busy ext4 (docs/performance.md).
    dirs = TaskDirs(tmp_path / "task")
    launch = task(shell="exit 4")
    assert run(run_task(executor, dirs, shell="exit 4")).exit_code == 4
    assert files_of(tmp_path) == [
        "task",
        "task/sandbox",
        "task/sandbox/stderr",
        "task/sandbox/stdout",
        "task/task.jsonl",
    ]
    recorded = task_record.read(dirs.root)
    assert recorded.launch is not None and recorded.launch["shell"] == launch.shell
    assert recorded.pid is not None and recorded.exit == 4
    assert (recorded.cgroup is not None) == executor.limits().startswith("cgroup")


def start_as_an_older_agent(dirs: TaskDirs, launch: TaskLaunch, shell: str) -> int:
    """Lay out ``launch`` as agents before the record did (``meta/``, one file per fact) with
    ``shell`` running as its wrapper did, no child of this process; answers its pid."""
    meta = dirs.root / "meta"
    meta.mkdir(parents=True)
    (meta / "launch.json").write_text(launch.model_dump_json())
    started = subprocess.run(
        [
            "/bin/sh",
            "-c",
            f"cd \"$1\" && setsid /bin/sh -c '{shell}' >/dev/null 2>&1 & echo $!",
            "-",
        ]
        + [str(dirs.root)],
        capture_output=True,
        text=True,
        check=True,
        timeout=DEADLINE,
    )
    pid = int(started.stdout)
    stat = Path(f"/proc/{pid}/stat").read_text()
    (meta / "pid").write_text(f"{pid} {parse_stat_start_time(stat)}\n")
    return pid


def test_a_task_an_older_agent_started_is_recovered_and_its_status_read_from_meta(
    dirs: TaskDirs, fifo: Callable[[str], Fifo]
) -> None:
    go = fifo("go")
    launch = task(shell="exit 6")
    older_wrapper = "read line < sandbox/go; echo 6 > meta/exit_code; exit 6"
    pid = start_as_an_older_agent(dirs, launch, older_wrapper)

    async def scenario() -> TaskExit:
        recovered = await ProcessExecutor().recover(launch, dirs)
        assert isinstance(recovered, ProcessHandle) and recovered.pid == pid
        go.write("go\n")
        return await finish(recovered)

    assert run(scenario()) == TaskExit(TaskState.FAILED, 6, "exited with status 6")


def test_a_task_an_older_agent_saw_end_is_recovered_with_its_status_from_meta(
    dirs: TaskDirs,
) -> None:
    launch = task(shell="exit 3")
    meta = dirs.root / "meta"
    meta.mkdir()
    (meta / "launch.json").write_text(launch.model_dump_json())
    (meta / "pid").write_text(f"{os.getpid()} 1\n")  # its pid now some other process's
    (meta / "exit_code").write_text("3\n")
    recovered = run(ProcessExecutor().recover(launch, dirs))
    assert recovered == TaskExit(TaskState.FAILED, 3, "exited with status 3")


# --- the task keeper: tasks are its children, not the agent's nor a wrapper's


def parent_of(pid: int) -> int:
    """The parent process of ``pid``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


async def end_of(found: ProcessHandle | TaskExit) -> TaskExit:
    """How a recovered task ended: at once, or once its handle says so."""
    return found if isinstance(found, TaskExit) else await finish(found)


def test_a_task_is_the_command_itself_a_child_of_the_keeper_in_its_cgroups(
    dirs: TaskDirs,
) -> None:
    executor = ProcessExecutor()

    async def scenario() -> None:
        handle = await executor.start(task(command=["sleep", "30"]), dirs)
        try:
            assert Path(f"/proc/{handle.pid}/comm").read_text() == "sleep\n"  # no wrapper
            keeper = parent_of(handle.pid)
            assert keeper != os.getpid()
            assert "corral.agent.keeper" in Path(f"/proc/{keeper}/cmdline").read_text()
            recorded = task_record.read(dirs.root).cgroup
            if recorded is not None:  # the task alone in its cgroups: the keeper went back
                assert TaskCgroup.load(recorded).pids() == {handle.pid}
        finally:
            await handle.kill(0)
            await finish(handle)

    run(scenario())


def test_a_task_ending_while_no_agent_runs_keeps_its_status(
    dirs: TaskDirs,
    fifo: Callable[[str], Fifo],
) -> None:
    go = fifo("go")
    launch = task(shell='read line < "$CORRAL_SANDBOX/go"; exit 4')
    # An agent process starts the task and exits; the task ends before the next one starts.
    agent = [sys.executable, "-c", AGENT, str(dirs.root), launch.model_dump_json()]
    subprocess.run(agent, check=True, timeout=DEADLINE)
    recorded = task_record.read(dirs.root).pid
    assert recorded is not None
    go.write("go\n")
    run(process_ends(recorded[0]))

    async def scenario() -> TaskExit:
        return await end_of(await ProcessExecutor().recover(launch, dirs))

    assert run(scenario()) == TaskExit(TaskState.FAILED, 4, "exited with status 4")


def test_tasks_of_a_killed_keeper_end_lost_and_the_next_task_gets_a_new_keeper(
    tmp_path: Path,
) -> None:
    executor = ProcessExecutor()
    first_dirs = TaskDirs(tmp_path / "first")
    first_dirs.sandbox.mkdir(parents=True)
    go = Fifo(first_dirs.sandbox / "go")

    async def scenario() -> None:
        first = await executor.start(task(shell='read line < "$CORRAL_SANDBOX/go"'), first_dirs)
        keeper = parent_of(first.pid)
        os.kill(keeper, signal.SIGKILL)
        await process_ends(keeper)
        go.write("go\n")  # it ends, and nobody records how
        assert await finish(first) == TaskExit(TaskState.FAILED, None, LOST_REASON)
        second = await executor.start(task(command=["sleep", "30"]), TaskDirs(tmp_path / "2"))
        assert parent_of(second.pid) not in (keeper, os.getpid())  # a new keeper's child
        await second.kill(0)
        assert (await finish(second)).state is TaskState.KILLED

    try:
        run(scenario())
    finally:
        os.close(go.fd)


def test_an_idle_keeper_goes_away(dirs: TaskDirs) -> None:
    async def scenario() -> int:
        executor = ProcessExecutor()
        handle = await executor.start(task(command=["sleep", "30"]), dirs)
        keeper = parent_of(handle.pid)
        await handle.kill(0)
        await finish(handle)
        return keeper

    keeper = run(scenario())  # the loop, and with it the agent's connection, ends here
    run(process_ends(keeper))  # within DEADLINE: the keeper waits 2 s for more


def test_a_task_the_wrapper_of_an_older_agent_runs_is_recovered_with_its_status(
    dirs: TaskDirs,
    fifo: Callable[[str], Fifo],
) -> None:
    go = fifo("go")
    launch = task(shell="exit 5")
    record = task_record.path(dirs.root)
    # The record as that agent wrote it (no keeper); its wrapper appends the status.
    task_record.append(dirs.root, launch=launch.model_dump(mode="json"), cgroup=None, ports=[])
    wrapper = f"read line < sandbox/go; printf '{{\"exit\":5}}\\n' >> {record}; exit 5"
    started = subprocess.run(
        ["/bin/sh", "-c", 'cd "$1" && setsid /bin/sh -c "$2" >/dev/null 2>&1 & echo $!', "-"]
        + [str(dirs.root), wrapper],
        capture_output=True,
        text=True,
        check=True,
        timeout=DEADLINE,
    )
    pid = int(started.stdout)
    start_time = parse_stat_start_time(Path(f"/proc/{pid}/stat").read_text())
    task_record.append(dirs.root, pid=[pid, start_time])

    async def scenario() -> TaskExit:
        found = await ProcessExecutor().recover(launch, dirs)
        assert isinstance(found, ProcessHandle) and found.pid == pid
        go.write("go\n")
        return await finish(found)

    assert run(scenario()) == TaskExit(TaskState.FAILED, 5, "exited with status 5")


def test_a_task_of_an_agent_whose_data_dir_is_relative_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``corral up`` keeps its state in ``./.corral``: the task's paths reach the keeper, which
    works from ``/``, as absolute ones (a new user's first ``corral run`` failed with "No such
    file or directory")."""
    monkeypatch.chdir(tmp_path)
    dirs = TaskDirs(Path(".corral/tasks/echo"))
    ended = run(run_task(ProcessExecutor(), dirs, command=["echo", "hi"]))
    assert ended == TaskExit(TaskState.FINISHED, 0, "exited with status 0")
    assert (tmp_path / ".corral/tasks/echo/sandbox/stdout").read_text() == "hi\n"
