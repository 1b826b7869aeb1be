"""The ``process`` executor: a task is a process group in its own session, cgroups for limits.

The agent's task keeper (``corral.agent.keeper``, one process per agent that outlives its
restarts) starts each task in its cgroups and working directory, reaps it, appends its exit
status to the task's record (``task_record``) and tells the agent, which waits for that on its
event loop (no threads). A restarted agent asks the keeper to watch the tasks it finds running.
A task the keeper no longer has (it was killed) or never had (an agent before the keeper
started it under a ``sh`` wrapper, which records the status itself) is watched through a pidfd
and its status read from the record; a task of a killed keeper that ends unrecorded is LOST.

Host ports (``launch.ports``) come from the agent's port pool and reach the task as ``PORT0..n``,
``PORT_<NAME>``, ``PORT`` and ``PORTS``; the record keeps them for a restarted agent.

A task makes five files and directories: its directory, the sandbox, ``stdout``, ``stderr`` and
the record (written once before the spawn, its pid appended after).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.agent import sandbox, task_record
from corral.agent.cgroups import Cgroups, TaskCgroup
from corral.agent.commands import run_shell
from corral.agent.executors.base import CommandResult, ExecError, LaunchError, TaskDirs, TaskExit
from corral.agent.executors.process_exec import ProcessExec, start_exec
from corral.agent.executors.process_tty import TtyExec, start_tty_exec
from corral.agent.gpus import gpu_env
from corral.agent.keeper_client import KeeperClient, KeeperGone
from corral.agent.ports import DEFAULT_RANGE, PortPool, port_env
from corral.agent.thread_batch import ThreadBatch
from corral.spec.execs import TerminalSize
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState

log = logging.getLogger(__name__)

LOST_REASON = "exit status lost while the agent was down"


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a process ended: an exit code, or the signal that killed it."""

    code: int | None = None
    signal: int | None = None


def shell_status(code: int) -> ExitStatus:
    """Undo the shell's encoding of "killed by signal N" as exit status 128 + N."""
    if 128 < code < 128 + signal.NSIG:
        return ExitStatus(signal=code - 128)
    return ExitStatus(code=code)


def signal_name(number: int) -> str:
    """``SIGSEGV`` for 11; ``signal 99`` for numbers without a name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(
    status: ExitStatus | None, kill_reason: str | None, oom_mib: int | None
) -> TaskExit:
    """Map how the task ended to its final state and the reason the user sees.

    ``status`` None means nobody saw the end; ``kill_reason`` is set when the agent asked the task
    to stop; ``oom_mib`` is the memory limit when the kernel OOM-killed a process of the task.
    """
    code = status.code if status is not None else None
    if kill_reason is not None:
        return TaskExit(TaskState.KILLED, code, kill_reason)
    if code == 0:
        return TaskExit(TaskState.FINISHED, 0, "exited with status 0")
    if oom_mib is not None:
        return TaskExit(TaskState.FAILED, code, f"memory limit exceeded ({oom_mib} MiB)")
    if status is None:
        return TaskExit(TaskState.FAILED, None, LOST_REASON)
    if status.signal is not None:
        return TaskExit(
            TaskState.FAILED, None, f"terminated by signal {signal_name(status.signal)}"
        )
    hint = {126: " (command not executable)", 127: " (command not found)"}.get(code or 0, "")
    return TaskExit(TaskState.FAILED, code, f"exited with status {code}{hint}")


def parse_stat_start_time(stat: str) -> int:
    """Field 22 of ``/proc/<pid>/stat``: start time in clock ticks after boot.

    The command name (field 2) may hold spaces and parentheses, so fields count from the last ')'.
    """
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _start_time(pid: int) -> int | None:
    try:
        return parse_stat_start_time(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def recorded_exit(root: Path) -> ExitStatus | None:
    """The status recorded in the task's record (by its keeper, or an older agent's wrapper), or
    None if none was."""
    code = task_record.read(root).exit
    return shell_status(code) if code is not None else None


def _oom_mib(cgroup: TaskCgroup | None, status: ExitStatus | None) -> int | None:
    """The task's memory limit if the OOM killer ended it, else None."""
    if cgroup is None or status == ExitStatus(code=0) or not cgroup.oom_killed():
        return None
    return cgroup.mem_mib


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


async def remove_cgroup(cgroup: TaskCgroup, patience: float = 2.0) -> bool:
    """Kill what is left in the task's cgroups and remove them, retrying while they are busy.

    SIGKILLed processes take a moment to leave a cgroup and v1 has no event for "now empty", so
    this polls for up to ``patience`` seconds, soon at first (a task's resources are free only
    once it is done: most cgroups empty within milliseconds), then every 50 ms; a cgroup that
    stays busy is logged, never raised.
    """
    if cgroup.remove():  # empty already, as most are once their task is reaped
        return True
    delay, waited = 0.001, 0.0
    while True:
        cgroup.kill_all()
        if cgroup.remove():
            return True
        if waited >= patience:
            break
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.05)
    log.warning("cgroup of a task stays busy, not removed: %s", ", ".join(map(str, cgroup.dirs)))
    return False


@dataclass(frozen=True, slots=True)
class TaskContext:
    """Where a task runs and what it sees: for commands run beside it (health checks) and in
    it (execs)."""

    env: dict[str, str]
    sandbox: Path
    workdir: Path  # its working directory (the sandbox unless it names another)


class ProcessHandle:
    """A running process task: its end told by the keeper, or seen through a pidfd on the event
    loop (a task an older agent started under the ``sh`` wrapper, or whose keeper is gone)."""

    def __init__(
        self,
        task_id: str,
        pid: int,
        root: Path,
        cgroup: TaskCgroup | None,
        *,
        keeper_exit: asyncio.Future[int | None] | None = None,
        pidfd: int = -1,
        start_time: int | None = None,
        context: TaskContext | None = None,
        on_end: Callable[[], None] | None = None,
        release_cgroup: Callable[[TaskCgroup], Awaitable[bool]] = remove_cgroup,
    ) -> None:
        """Watch the task led by ``pid``: through ``keeper_exit`` (its status, None if the
        keeper went away: then through a pidfd of ``pid`` if it still is the process that
        started at ``start_time``), or through ``pidfd`` (owned by the handle from now on).
        ``root`` is the task's directory, where its record is. Its ``cgroup`` goes to
        ``release_cgroup`` once it has ended.

        ``on_end`` is called once the task has ended, before ``wait`` answers (not on detach).
        """
        self.task_id = task_id
        self.pid = pid  # leads the task's session and process group
        self._pidfd = pidfd
        self._start_time = start_time
        self._watching = True  # until it ended, or the handle was detached
        self._root = root
        self._cgroup = cgroup
        self._release_cgroup = release_cgroup
        self._context = context
        self._on_end = on_end
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[TaskExit] = self._loop.create_future()
        self._kill_reason: str | None = None
        self._kill_deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._detached = False
        self._cleanup: asyncio.Task[None] | None = None
        if keeper_exit is not None:
            keeper_exit.add_done_callback(self._on_keeper_exit)
        else:
            self._loop.add_reader(pidfd, self._on_exit)

    async def wait(self) -> TaskExit:
        """Return once the task has ended, its last process included. Same answer every call."""
        if self._detached:
            raise RuntimeError(f"task {self.task_id}: handle detached, recover() it instead")
        # Shielded: a caller's timeout must not cancel the answer other callers wait for.
        return await asyncio.shield(self._done)

    async def kill(self, grace: float) -> None:
        """SIGTERM the process group now, SIGKILL it after ``grace`` seconds if it still runs.

        Idempotent: SIGTERM is sent once; a later call with a shorter grace brings SIGKILL forward.
        """
        if self._detached:
            raise RuntimeError(f"task {self.task_id}: handle detached, recover() it instead")
        if not self._watching:
            return  # it has ended
        if self._kill_reason is None:
            self._kill_reason = "killed (SIGTERM)"
            _signal_group(self.pid, signal.SIGTERM)
        deadline = self._loop.time() + max(grace, 0.0)
        if deadline < self._kill_deadline:
            self._kill_deadline = deadline
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._force)

    async def run_command(self, command: str, timeout: float) -> CommandResult:
        """Run ``sh -c command`` in the sandbox with the task's environment."""
        if self._context is None:
            return CommandResult(None, error="the task's environment is not known")
        if self._done.done() or self._detached:
            return CommandResult(None, error="the task has ended")
        context = self._context
        return await run_shell(command, env=context.env, cwd=context.sandbox, timeout=timeout)

    async def exec(
        self, command: list[str], stdin: bool, tty: bool = False, size: TerminalSize | None = None
    ) -> ProcessExec | TtyExec:
        """Start ``command`` in the task's working directory, with its environment, inside its
        cgroups (when it has some); on a terminal of its own with ``tty``."""
        if self._context is None:
            raise ExecError("the task's environment is not known")
        if self._done.done() or not self._watching:
            raise ExecError("the task has ended")
        procs = self._cgroup.procs_files() if self._cgroup is not None else []
        env, cwd = self._context.env, self._context.workdir
        if tty:
            return await start_tty_exec(command, env=env, cwd=cwd, cgroup_procs=procs, size=size)
        return await start_exec(command, env=env, cwd=cwd, cgroup_procs=procs, stdin=stdin)

    def detach(self) -> None:
        """Stop watching without touching the task (agent shutdown); ``recover`` finds it again.

        Pending ``wait`` calls are cancelled.
        """
        if not self._watching:
            return  # it has ended
        self._detached = True
        self._stop_watching()
        self._done.cancel()

    def _force(self) -> None:
        if not self._watching:
            return
        self._kill_reason = "killed (SIGKILL after grace)"
        _signal_group(self.pid, signal.SIGKILL)
        if self._cgroup is not None:
            self._cgroup.kill_all()  # also processes that left the group (setsid, daemons)

    def _on_keeper_exit(self, told: asyncio.Future[int | None]) -> None:
        """The keeper reaped the task (its status), or went away (None)."""
        if not self._watching:
            return  # detached
        code = told.result()
        if code is not None:
            self._finish(shell_status(code))  # the keeper killed what was left of its group
            return
        pidfd = _open_same_process(self.pid, self._start_time) if self._start_time else None
        if pidfd is None:  # ended too, unseen
            self._finish(recorded_exit(self._root))
            return
        self._pidfd = pidfd
        self._loop.add_reader(pidfd, self._on_exit)

    def _on_exit(self) -> None:
        """The pidfd is readable: the task's leader has exited. It is no child of ours, so its
        status is what its recorder (an older agent's wrapper) wrote, if anything did."""
        self._finish(recorded_exit(self._root))

    def _finish(self, status: ExitStatus | None) -> None:
        self._stop_watching()
        ended = describe_exit(status, self._kill_reason, _oom_mib(self._cgroup, status))
        if self._cgroup is None:
            self._answer(ended)
        else:
            self._cleanup = self._loop.create_task(self._settle(self._cgroup, ended))

    async def _settle(self, cgroup: TaskCgroup, ended: TaskExit) -> None:
        """Answer once the task's last process has left: only then are its resources free."""
        await self._release_cgroup(cgroup)
        self._answer(ended)

    def _answer(self, ended: TaskExit) -> None:
        if self._on_end is not None:
            self._on_end()
        self._done.set_result(ended)

    def _stop_watching(self) -> None:
        self._watching = False
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _task_argv(
    launch: TaskLaunch, commands: sandbox.CommandCache, search_path: str, workdir: Path
) -> list[str]:
    """What the task runs: the resolved command, or the shell string under ``/bin/sh -c``."""
    if launch.command is not None and launch.shell is not None:
        raise LaunchError("give either command or shell, not both")
    if launch.shell is not None:
        return ["/bin/sh", "-c", launch.shell]
    if not launch.command:
        raise LaunchError("nothing to run: neither command nor shell given")
    program = commands.resolve(launch.command[0], search_path, workdir)
    return [program, *launch.command[1:]]


def _workdir(launch: TaskLaunch, dirs: TaskDirs) -> Path:
    """The task's working directory; the sandbox if it is no longer there (a recovered task)."""
    try:
        return sandbox.resolve_workdir(launch, dirs.sandbox)
    except LaunchError:
        return dirs.sandbox


def _open_same_process(pid: int, start_time: int) -> int | None:
    """A pidfd of ``pid`` if it is still the process that started at ``start_time``."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    # Checked after opening: if the start time still matches, the pidfd is of that process.
    if _start_time(pid) != start_time:
        os.close(pidfd)
        return None
    return pidfd


def _load_cgroup(record: task_record.TaskRecord) -> TaskCgroup | None:
    if record.cgroup is None:
        return None  # the task ran without cgroups
    try:
        return TaskCgroup.load(record.cgroup)
    except ValueError:
        return None


class ProcessExecutor:
    """Runs tasks as local process groups, limited by cgroups when the host allows it."""

    driver = "process"

    def __init__(
        self,
        cgroup_name: str = "corral",
        *,
        cgroups: Cgroups | None = None,
        agent_env: Mapping[str, str] | None = None,
        port_pool: PortPool | None = None,
    ) -> None:
        """Detect cgroups now (task cgroups go in ``<agent's cgroup>/<cgroup_name>/<task>``).

        ``cgroups`` replaces detection (e.g. ``Cgroups.disabled(reason)``); ``agent_env`` replaces
        ``os.environ`` as the source of the tasks' ``PATH``, ``LANG`` and ``HOME``;
        ``port_pool`` hands out the tasks' host ports (pass the agent's one pool, shared with its
        other executors; default: a pool of its own over ``DEFAULT_RANGE``).
        """
        self._cgroups = cgroups if cgroups is not None else Cgroups.detect(cgroup_name)
        # Where the keeper goes back to after a burst of spawns: the same for every task.
        self._home = (
            [str(path) for path in self._cgroups.home_files()] if self._cgroups.enabled else []
        )
        self._agent_env = dict(os.environ if agent_env is None else agent_env)
        self._ports = port_pool if port_pool is not None else PortPool(*DEFAULT_RANGE)
        self._keepers: dict[Path, KeeperClient] = {}
        self._prepare = ThreadBatch()
        self._commands = sandbox.CommandCache()

    def limits(self) -> str:
        """One line saying which resource limits are enforced, or why none are."""
        return self._cgroups.description

    def ports(self, task_id: str) -> list[int]:
        """The host ports given to a running task (``PORT0..n``), in the order asked for."""
        return self._ports.held(task_id)

    async def open(self, tasks_dir: Path) -> None:
        """Start (or reach) the task keeper of ``tasks_dir`` now: it takes 30-50 ms to start,
        which the agent's first task would wait for."""
        try:
            await self._keeper(tasks_dir).connect()
        except KeeperGone as exc:
            log.warning("the task keeper did not start (%s); tried again at a launch", exc)

    def _keeper(self, tasks_dir: Path) -> KeeperClient:
        """The keeper of the tasks directory ``tasks_dir``."""
        keeper = self._keepers.get(tasks_dir)
        if keeper is None:
            keeper = self._keepers[tasks_dir] = KeeperClient(tasks_dir)
        return keeper

    async def start(self, launch: TaskLaunch, dirs: TaskDirs) -> ProcessHandle:
        """Start the task. Raise ``LaunchError`` with a user-facing reason if it cannot.

        The host ports of ``launch.ports`` are held until the task ends.
        """
        host_ports = self._ports.reserve(launch.task_id, launch.ports)
        try:
            # The sandbox, the record and the cgroups are disk and kernel work that takes
            # milliseconds per task: in a worker thread, a burst of launches never holds up the
            # agent's channel (an agent silent for seconds is disconnected). A message's
            # launches share one hop.
            request, record, cgroup, env = await self._prepare.run(
                self._prepare_task, launch, dirs, host_ports
            )
        except BaseException:
            self._ports.release(launch.task_id)
            raise
        keeper = self._keeper(dirs.root.parent)
        try:
            pid, start_time = await keeper.spawn(request)
        except BaseException as exc:
            os.close(record)
            if cgroup is not None:
                cgroup.remove()
            self._ports.release(launch.task_id)
            if isinstance(exc, KeeperGone):
                raise LaunchError(f"cannot start the task: {exc}") from exc
            raise
        if cgroup is not None:  # the keeper has left the task's cgroups: now it may be held
            try:
                cgroup.limit_cpu(launch.cpus)
            except OSError as exc:  # checked when the cgroup was made: not expected
                log.warning("task %s runs without its cpu quota (%s)", launch.task_id, exc)
        try:
            os.write(record, task_record.line(pid=[pid, start_time]))
        except OSError as exc:  # a full disk: this agent watches it all the same
            log.warning("task %s: its pid is not recorded (%s)", launch.task_id, exc)
        finally:
            os.close(record)
        return self._keeper_handle(launch, dirs, keeper, pid, start_time, cgroup, env)

    def _prepare_task(
        self, launch: TaskLaunch, dirs: TaskDirs, host_ports: list[int]
    ) -> tuple[dict[str, Any], int, TaskCgroup | None, dict[str, str]]:
        """Prepare the sandbox, cgroups and record (blocking: runs in a worker thread); answers
        the keeper's spawn request, the record's descriptor (for the pid), the task's cgroup and
        its environment."""
        sandbox.prepare(dirs)
        env = self._env(launch, dirs, host_ports)
        workdir = sandbox.resolve_workdir(launch, dirs.sandbox)
        argv = _task_argv(launch, self._commands, env["PATH"], workdir)
        if any("\0" in arg for arg in argv) or any("\0" in k + v for k, v in env.items()):
            raise ValueError("embedded null byte")  # as posix_spawn would say
        cgroup = self._create_cgroup(launch)
        # Written before the spawn: an agent that dies right after it still finds the task (and
        # its cgroups, to stop what it started); the pid follows on the same descriptor.
        try:
            record = task_record.create(
                dirs.root,
                launch=task_record.RawJson(launch.model_dump_json()),
                cgroup=cgroup.dump() if cgroup is not None else None,
                ports=host_ports,
                keeper=True,
            )
        except OSError as exc:
            if cgroup is not None:
                cgroup.remove()
            # The agent's paths are not the user's business: say what, not where.
            why = exc.strerror or type(exc).__name__
            raise LaunchError(f"cannot write the task's record on the agent: {why}") from exc
        sandbox_dir = str(dirs.sandbox)
        request = {
            "argv": argv,
            "env": env,
            "cwd": str(workdir),
            "stdout": f"{sandbox_dir}/stdout",
            "stderr": f"{sandbox_dir}/stderr",
            "join": [str(path) for path in cgroup.join_files()] if cgroup is not None else [],
            "home": self._home,
            "record": str(task_record.path(dirs.root)),
        }
        return request, record, cgroup, env

    def _env(self, launch: TaskLaunch, dirs: TaskDirs, host_ports: list[int]) -> dict[str, str]:
        """The task's environment; the ports are the agent's facts, so they come last."""
        env = sandbox.task_env(launch, dirs.sandbox, self._agent_env)
        env.update(gpu_env(launch, cuda=True))
        if len(host_ports) == len(launch.ports):  # else a recovered task's record is damaged
            env.update(port_env(launch.ports, host_ports))
        return env

    def _context(self, launch: TaskLaunch, dirs: TaskDirs, env: dict[str, str]) -> TaskContext:
        return TaskContext(env, dirs.sandbox, _workdir(launch, dirs))

    def _keeper_handle(
        self,
        launch: TaskLaunch,
        dirs: TaskDirs,
        keeper: KeeperClient,
        pid: int,
        start_time: int | None,
        cgroup: TaskCgroup | None,
        env: dict[str, str],
    ) -> ProcessHandle:
        told = keeper.exited(pid)
        told.add_done_callback(lambda _: keeper.forget(pid))
        return ProcessHandle(
            launch.task_id,
            pid,
            dirs.root,
            cgroup,
            keeper_exit=told,
            start_time=start_time,
            context=self._context(launch, dirs, env),
            on_end=lambda: self._ports.release(launch.task_id),
            release_cgroup=self._release_cgroup,
        )

    async def recover(self, launch: TaskLaunch, dirs: TaskDirs) -> ProcessHandle | TaskExit:
        """Re-attach to a task started by an earlier agent process.

        Answer a handle if it still runs (its host ports held again): its end told by the keeper
        that started it, or, if that keeper is gone or an older agent's ``sh`` wrapper leads
        it, seen through a pidfd. Else how it ended, from its record (FAILED with
        ``LOST_REASON`` if nobody recorded it).
        """
        record = task_record.read(dirs.root)
        cgroup = _load_cgroup(record)
        if record.exit is None and record.pid is not None:
            pid, start_time = record.pid
            env = self._env(launch, dirs, record.ports)
            if record.keeper:
                keeper = self._keeper(dirs.root.parent)
                told = keeper.exited(pid)  # claimed first: an end told meanwhile is kept
                try:
                    watched = await keeper.watch(pid)
                except KeeperGone:
                    watched = False
                if watched:
                    self._ports.adopt(launch.task_id, record.ports)
                    return self._keeper_handle(launch, dirs, keeper, pid, start_time, cgroup, env)
                if not told.done():
                    keeper.forget(pid)
                record = task_record.read(dirs.root)  # its end may have been recorded meanwhile
            pidfd = _open_same_process(pid, start_time) if record.exit is None else None
            if pidfd is not None:  # running, and nobody will record its end but its wrapper
                self._ports.adopt(launch.task_id, record.ports)
                return ProcessHandle(
                    launch.task_id,
                    pid,
                    dirs.root,
                    cgroup,
                    pidfd=pidfd,
                    context=self._context(launch, dirs, env),
                    on_end=lambda: self._ports.release(launch.task_id),
                    release_cgroup=self._release_cgroup,
                )
        status = shell_status(record.exit) if record.exit is not None else None
        ended = describe_exit(status, None, _oom_mib(cgroup, status))
        if cgroup is not None:
            await self._release_cgroup(cgroup)
        return ended

    async def _release_cgroup(self, cgroup: TaskCgroup) -> bool:
        """Keep an ended task's cgroups for a later task if they may be (``Cgroups.reuse``),
        else kill what is left there and remove them (``remove_cgroup``)."""
        return self._cgroups.reuse(cgroup) or await remove_cgroup(cgroup)

    def close(self) -> None:
        """Remove the agent's directories of task cgroups (kept if a task's is still there)."""
        if not self._cgroups.release():
            log.info(
                "task cgroups remain; kept: %s", ", ".join(map(str, self._cgroups.parents.values()))
            )

    def _create_cgroup(self, launch: TaskLaunch) -> TaskCgroup | None:
        """Create the task's cgroups (None if this host gives none)."""
        try:
            return self._cgroups.create(launch.mem, launch.cpus)
        except OSError as exc:
            raise LaunchError(f"cannot set resource limits: {exc.strerror or exc}") from exc
