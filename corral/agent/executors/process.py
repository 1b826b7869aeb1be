"""The ``process`` executor: a task is a process group in its own session, cgroups for limits.

Each task runs under ``WRAPPER``, a few lines of ``/bin/sh`` that join the task's cgroups, run the
command and append its exit status to the task's record (``task_record``). The agent supervises
without threads: it watches a pidfd of the wrapper on the event loop and reaps it with
``waitid``. After an agent restart the wrapper is no longer its child; ``recover`` then watches
the pidfd again and takes the status the wrapper recorded.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from corral.agent import sandbox, task_record
from corral.agent.cgroups import Cgroups, TaskCgroup
from corral.agent.commands import run_shell
from corral.agent.executors.base import CommandResult, ExecError, LaunchError, TaskDirs, TaskExit
from corral.agent.executors.process_exec import ProcessExec, start_exec
from corral.agent.executors.process_tty import TtyExec, start_tty_exec
from corral.agent.gpus import gpu_env
from corral.agent.ports import DEFAULT_RANGE, PortPool, port_env
from corral.spec.execs import TerminalSize
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState

log = logging.getLogger(__name__)

LOST_REASON = "exit status lost while the agent was down"

# Arguments: the task's record, the working directory, the cgroup.procs files to join, "--",
# the command.
# It joins the cgroups before the command exists, so limits hold from its first instruction.
# The trap keeps the wrapper alive through the SIGTERM sent to the task's process group, so it can
# record the status (a caught signal is reset for the command, an ignored one would not be). A
# SIGKILL kills it too; the agent is alive then and gets the status from the kernel instead.
# (A SIGTERM in the instant between the trap and the command's start is lost; SIGKILL after the
# grace still stops the task.)
# The status is one short line appended (one write: it never mixes with the agent's lines),
# read only once the wrapper has exited.
WRAPPER = """\
record=$1
cd -- "$2" || { echo "corral: cannot enter the working directory $2" >&2; exit 125; }
shift 2
while [ "$1" != -- ]; do
  echo "$$" > "$1" || { echo "corral: cannot join cgroup $1" >&2; exit 125; }
  shift
done
shift
trap : HUP INT TERM
"$@"
status=$?
printf '{"exit":%s}\\n' "$status" >> "$record"
exit "$status"
"""


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


def waitid_status(result: os.waitid_result) -> ExitStatus:
    """The wrapper's end as the kernel reports it; its exit code relays the command's status."""
    if result.si_code == os.CLD_EXITED:
        return shell_status(result.si_status)
    return ExitStatus(signal=result.si_status)


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
    """The status the wrapper recorded in the task's record, or None if it recorded none."""
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
    """A running process task, watched through a pidfd on the event loop (no threads)."""

    def __init__(
        self,
        task_id: str,
        pid: int,
        pidfd: int,
        root: Path,
        cgroup: TaskCgroup | None,
        *,
        context: TaskContext | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        """Watch the wrapper ``pid`` through ``pidfd`` (owned by the handle from now on); ``root``
        is the task's directory, where its record is.

        ``on_end`` is called once the task has ended, before ``wait`` answers (not on detach).
        """
        self.task_id = task_id
        self.pid = pid  # of the wrapper, which leads the task's session and process group
        self._pidfd = pidfd
        self._root = root
        self._cgroup = cgroup
        self._context = context
        self._on_end = on_end
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[TaskExit] = self._loop.create_future()
        self._kill_reason: str | None = None
        self._kill_deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._detached = False
        self._cleanup: asyncio.Task[None] | None = None
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
        if self._pidfd < 0:
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
        if self._done.done() or self._detached or self._pidfd < 0:
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
        if self._pidfd < 0:
            return  # it has ended
        self._detached = True
        self._stop_watching()
        self._done.cancel()

    def _force(self) -> None:
        if self._pidfd < 0:
            return
        self._kill_reason = "killed (SIGKILL after grace)"
        _signal_group(self.pid, signal.SIGKILL)
        if self._cgroup is not None:
            self._cgroup.kill_all()  # also processes that left the group (setsid, daemons)

    def _on_exit(self) -> None:
        """The pidfd is readable: the wrapper has exited."""
        try:
            result = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            # Not our child: an earlier agent started it, so the wrapper recorded the status.
            self._finish(recorded_exit(self._root), reaped=False)
            return
        if result is not None:
            self._finish(waitid_status(result), reaped=True)

    def _finish(self, status: ExitStatus | None, reaped: bool) -> None:
        self._stop_watching()
        ended = describe_exit(status, self._kill_reason, _oom_mib(self._cgroup, status))
        # A task's processes do not outlive it. Right after we reaped the leader its pid is still
        # pinned as the group id if anything is left in the group, so this cannot hit a stranger.
        if reaped:
            _signal_group(self.pid, signal.SIGKILL)
        if self._cgroup is None:
            self._answer(ended)
        else:
            self._cleanup = self._loop.create_task(self._settle(self._cgroup, ended))

    async def _settle(self, cgroup: TaskCgroup, ended: TaskExit) -> None:
        """Answer once the task's last process has left: only then are its resources free."""
        await remove_cgroup(cgroup)
        self._answer(ended)

    def _answer(self, ended: TaskExit) -> None:
        if self._on_end is not None:
            self._on_end()
        self._done.set_result(ended)

    def _stop_watching(self) -> None:
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _task_argv(launch: TaskLaunch, search_path: str, workdir: Path) -> list[str]:
    """What the wrapper runs: the resolved command, or the shell string under ``/bin/sh -c``."""
    if launch.command is not None and launch.shell is not None:
        raise LaunchError("give either command or shell, not both")
    if launch.shell is not None:
        return ["/bin/sh", "-c", launch.shell]
    if not launch.command:
        raise LaunchError("nothing to run: neither command nor shell given")
    program = sandbox.resolve_command(launch.command[0], search_path, workdir)
    return [program, *launch.command[1:]]


_OUTPUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
# Python ignores these at start and spawned children inherit that: a task is given the defaults,
# as subprocess's restore_signals does, so that a pipe's writer ends quietly when its reader has.
_PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)


def _spawn(argv: list[str], env: dict[str, str], sandbox_dir: Path) -> int:
    """Start ``argv`` in a new session with output to the sandbox; return its pid (unreaped).

    posix_spawn (vfork underneath) costs a fraction of a fork of the agent; the wrapper
    changes into the working directory itself, as posix_spawn cannot. The files are opened
    here and only duplicated in the child: CPython holds the GIL until the child has exec'ed,
    so whatever the child does first stalls every thread of the agent (creating two files on
    a busy disk, milliseconds).
    """
    fds = [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)]
    try:
        for name in ("stdout", "stderr"):
            fds.append(os.open(sandbox_dir / name, _OUTPUT_FLAGS, 0o644))
        return os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)],
            setsid=True,
            setsigdef=_PYTHON_IGNORES,
        )
    finally:
        for fd in fds:
            os.close(fd)


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
        self._agent_env = dict(os.environ if agent_env is None else agent_env)
        self._ports = port_pool if port_pool is not None else PortPool(*DEFAULT_RANGE)

    def limits(self) -> str:
        """One line saying which resource limits are enforced, or why none are."""
        return self._cgroups.description

    def ports(self, task_id: str) -> list[int]:
        """The host ports given to a running task (``PORT0..n``), in the order asked for."""
        return self._ports.held(task_id)

    async def start(self, launch: TaskLaunch, dirs: TaskDirs) -> ProcessHandle:
        """Start the task. Raise ``LaunchError`` with a user-facing reason if it cannot.

        The host ports of ``launch.ports`` are held until the task ends.
        """
        host_ports = self._ports.reserve(launch.task_id, launch.ports)
        try:
            # The sandbox, the records, the cgroups and the spawn are disk and kernel work that
            # takes milliseconds per task: in a worker thread, a burst of launches never holds
            # up the agent's channel (an agent silent for seconds is disconnected).
            pid, pidfd, cgroup, env = await asyncio.to_thread(
                self._spawn_task, launch, dirs, host_ports
            )
        except BaseException:
            self._ports.release(launch.task_id)
            raise
        return self._handle(launch, dirs, pid, pidfd, cgroup, env)

    def _spawn_task(
        self, launch: TaskLaunch, dirs: TaskDirs, host_ports: list[int]
    ) -> tuple[int, int, TaskCgroup | None, dict[str, str]]:
        """Prepare the sandbox, cgroups and record and spawn the task's wrapper (blocking: runs in
        a worker thread); answers its pid, a pidfd of it, its cgroup and its environment."""
        sandbox.prepare(dirs)
        env = self._env(launch, dirs, host_ports)
        workdir = sandbox.resolve_workdir(launch, dirs.sandbox)
        argv = _task_argv(launch, env["PATH"], workdir)
        cgroup = self._create_cgroup(launch)
        # Written before the spawn: an agent that dies right after it still finds the task (and
        # its cgroups, to stop what it started); the pid follows on the same descriptor.
        try:
            record = task_record.create(
                dirs.root,
                launch=task_record.RawJson(launch.model_dump_json()),
                cgroup=cgroup.dump() if cgroup is not None else None,
                ports=host_ports,
            )
        except OSError as exc:
            if cgroup is not None:
                cgroup.remove()
            # The agent's paths are not the user's business: say what, not where.
            why = exc.strerror or type(exc).__name__
            raise LaunchError(f"cannot write the task's record on the agent: {why}") from exc
        try:
            procs = [str(path) for path in cgroup.procs_files()] if cgroup is not None else []
            wrapper = ["/bin/sh", "-c", WRAPPER, "corral-task", str(task_record.path(dirs.root))]
            wrapper += [str(workdir), *procs, "--", *argv]
            try:
                pid = _spawn(wrapper, env, dirs.sandbox)
            except BaseException as exc:  # a NUL byte in the command or environment too
                if cgroup is not None:
                    cgroup.remove()
                if isinstance(exc, OSError):
                    raise LaunchError(f"cannot start the task: {exc.strerror or exc}") from exc
                raise
            pidfd = os.pidfd_open(pid)
            try:
                # The wrapper's /proc entry stays until we reap it, however fast it ends.
                os.write(record, task_record.line(pid=[pid, _start_time(pid)]))
            except OSError as exc:  # a full disk: this agent watches it all the same
                log.warning("task %s: its pid is not recorded (%s)", launch.task_id, exc)
        finally:
            os.close(record)
        return pid, pidfd, cgroup, env

    def _env(self, launch: TaskLaunch, dirs: TaskDirs, host_ports: list[int]) -> dict[str, str]:
        """The task's environment; the ports are the agent's facts, so they come last."""
        env = sandbox.task_env(launch, dirs.sandbox, self._agent_env)
        env.update(gpu_env(launch, cuda=True))
        if len(host_ports) == len(launch.ports):  # else a recovered task's record is damaged
            env.update(port_env(launch.ports, host_ports))
        return env

    def _handle(
        self,
        launch: TaskLaunch,
        dirs: TaskDirs,
        pid: int,
        pidfd: int,
        cgroup: TaskCgroup | None,
        env: dict[str, str],
    ) -> ProcessHandle:
        return ProcessHandle(
            launch.task_id,
            pid,
            pidfd,
            dirs.root,
            cgroup,
            context=TaskContext(env, dirs.sandbox, _workdir(launch, dirs)),
            on_end=lambda: self._ports.release(launch.task_id),
        )

    async def recover(self, launch: TaskLaunch, dirs: TaskDirs) -> ProcessHandle | TaskExit:
        """Re-attach to a task started by an earlier agent process.

        Answer a handle if its wrapper still runs (its host ports held again), else how it
        ended from its record (FAILED with ``LOST_REASON`` if the wrapper could not record it).
        """
        record = task_record.read(dirs.root)
        cgroup = _load_cgroup(record)
        pidfd = _open_same_process(*record.pid) if record.pid is not None else None
        if record.pid is not None and pidfd is not None:
            self._ports.adopt(launch.task_id, record.ports)
            env = self._env(launch, dirs, record.ports)
            return self._handle(launch, dirs, record.pid[0], pidfd, cgroup, env)
        status = shell_status(record.exit) if record.exit is not None else None
        ended = describe_exit(status, None, _oom_mib(cgroup, status))
        if cgroup is not None:
            await remove_cgroup(cgroup)
        return ended

    def _create_cgroup(self, launch: TaskLaunch) -> TaskCgroup | None:
        """Create the task's cgroups (None if this host gives none)."""
        try:
            return self._cgroups.create(launch.task_id, launch.mem, launch.cpus)
        except OSError as exc:
            raise LaunchError(f"cannot set resource limits: {exc.strerror or exc}") from exc
