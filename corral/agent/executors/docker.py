"""The ``docker`` executor: a task is a container of the local Docker Engine, driven over its API.

Containers carry the labels ``corral.task_id`` and ``corral.agent_id``, so a restarted agent finds
them again even if its note of the container id (in the task's record) is lost. While a container
runs, its handle follows the log stream and appends stdout and stderr to the sandbox files as they
come; a restarted agent counts the bytes already there and copies only the rest. Once the
container has stopped and its output is copied, the handle answers how it ended and removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket as sockets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import aiodocker
from aiodocker.containers import DockerContainer

from corral.agent import sandbox, task_record
from corral.agent.executors.base import CommandResult, ExecError, LaunchError, TaskDirs, TaskExit
from corral.agent.executors.docker_config import (
    JSON,
    TASK_ID_LABEL,
    check_privilege,
    check_volumes,
    container_config,
    describe_end,
    hide_paths,
    host_ports_wanted,
    ports_of,
    stop_signal_name,
)
from corral.agent.executors.docker_exec import DOCKER_ERRORS as _DOCKER_ERRORS
from corral.agent.executors.docker_exec import DockerExec, exec_shell, open_exec
from corral.agent.executors.docker_exec import error_text as _error_text
from corral.agent.executors.docker_logs import STREAM_FILES, LogCopier
from corral.agent.executors.docker_volumes import StagedVolumes, release_pins, stage_volumes
from corral.agent.executors.process import describe_exit
from corral.agent.ports import DEFAULT_RANGE, PortPool
from corral.spec.docker import DockerSpec
from corral.spec.execs import TerminalSize
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
GONE_REASON = "container of the task is gone (agent restarted)"
REMOVED_REASON = "container of the task was removed by someone else"
UNSTARTED_REASON = "the agent restarted before the container started"
LOG_DRAIN_TIMEOUT = 5.0  # seconds to let the log stream deliver its end after the container's
PROBE_TIMEOUT = 5.0
# The log stream multiplexes frames: stream id, three zero bytes, payload length (big-endian).


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """What ``available()`` learnt of a Docker daemon, for ``limits()``."""

    version: str
    memory_limit: bool
    cpu_limit: bool


_DAEMONS: dict[str, DaemonInfo] = {}  # by socket


async def _remove(container: DockerContainer) -> None:
    """Remove a container, running or not; one that is gone already is fine."""
    try:
        await container.delete(force=True, v=True)
    except aiodocker.DockerError as exc:
        if exc.status != 404:
            log.warning("cannot remove container %s: %s", container.id, _error_text(exc))


class DockerHandle:
    """A task's running container: follows its logs, answers its end, then removes it."""

    def __init__(
        self,
        task_id: str,
        docker: aiodocker.Docker,
        container: JSON,
        sandbox_dir: Path,
        *,
        mem_mib: int,
        keep: bool,
        on_end: Callable[[], None],
    ) -> None:
        """Watch ``container`` (its inspect data); ``docker`` belongs to the handle from now on."""
        self.task_id = task_id
        self.container_id: str = container["Id"]
        self._docker = docker
        self._container = docker.containers.container(self.container_id)
        self._logs = LogCopier(docker, self.container_id, sandbox_dir)
        self._mem_mib = mem_mib
        self._keep = keep
        self._on_end = on_end
        self._stop_signal = stop_signal_name(container)
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[TaskExit] = self._loop.create_future()
        self._kill_reason: str | None = None
        self._kill_deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._signals: set[asyncio.Task[None]] = set()
        self._detached = False
        self._supervisor = self._loop.create_task(self._supervise(), name=f"docker {task_id}")

    async def wait(self) -> TaskExit:
        """Return once the container has stopped and its output is copied. Same answer each call."""
        if self._detached:
            raise RuntimeError(f"task {self.task_id}: handle detached, recover() it instead")
        # Shielded: a caller's timeout must not cancel the answer other callers wait for.
        return await asyncio.shield(self._done)

    async def kill(self, grace: float) -> None:
        """Send the stop signal now and SIGKILL after ``grace`` seconds, as ``docker stop`` does.

        Returns at once; the signals are sent in the background. Idempotent: the stop signal is
        sent once; a later call with a shorter grace brings SIGKILL forward.
        """
        if self._detached:
            raise RuntimeError(f"task {self.task_id}: handle detached, recover() it instead")
        if self._done.done():
            return
        if self._kill_reason is None:
            self._kill_reason = f"killed ({self._stop_signal})"
            self._send(self._stop_signal)
        deadline = self._loop.time() + max(grace, 0.0)
        if deadline < self._kill_deadline:
            self._kill_deadline = deadline
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._force)

    async def run_command(self, command: str, timeout: float) -> CommandResult:
        """Run ``sh -c command`` inside the container (Docker exec), with its environment."""
        # The client closes a moment before the end is answered: that is the end already.
        if self._done.done() or self._detached or self._docker.session.closed:
            return CommandResult(None, error="the task has ended")
        return await exec_shell(self._docker, self.container_id, command, timeout)

    async def exec(
        self, command: list[str], stdin: bool, tty: bool = False, size: TerminalSize | None = None
    ) -> DockerExec:
        """Start ``command`` inside the container (Docker exec, attached; with a terminal of
        window ``size`` if ``tty``)."""
        if self._done.done() or self._detached or self._docker.session.closed:
            raise ExecError("the task has ended")
        return await open_exec(self._docker, self.container_id, command, stdin, tty, size)

    async def detach(self) -> None:
        """Stop watching, leave the container running (agent shutdown); ``recover`` finds it.

        Pending ``wait`` calls are cancelled.
        """
        if self._done.done():
            return
        self._detached = True
        self._supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._supervisor
        await self._docker.close()  # again: the cancel may have cut the supervisor's close short
        self._done.cancel()

    def _force(self) -> None:
        if not self._done.done():
            self._kill_reason = "killed (SIGKILL after grace)"
            self._send("SIGKILL")

    def _send(self, signal: str) -> None:
        task = self._loop.create_task(self._signal(signal))
        self._signals.add(task)
        task.add_done_callback(self._signals.discard)

    async def _signal(self, signal: str) -> None:
        try:
            await self._container.kill(signal=signal)
        except _DOCKER_ERRORS as exc:
            # 409: it is not running (any more), which is what was asked.
            if not isinstance(exc, aiodocker.DockerError) or exc.status not in (404, 409):
                log.warning("task %s: cannot send %s: %s", self.task_id, signal, _error_text(exc))

    async def _supervise(self) -> None:
        """Answer ``wait`` once the end is known and the output copied; close the client first."""
        follower = self._loop.create_task(self._follow())
        try:
            ended = await self._outcome(follower)
        except Exception as exc:  # a bug or an odd answer must not leave the task RUNNING forever
            log.exception("task %s: supervising its container failed", self.task_id)
            ended = TaskExit(TaskState.FAILED, None, f"lost track of the container: {exc}")
        finally:  # also when detached (cancelled)
            await self._close(follower)
        self._on_end()
        self._done.set_result(ended)

    async def _outcome(self, follower: asyncio.Task[bool]) -> TaskExit:
        state = await self._end_state()
        kill_reason = self._kill_reason  # a kill asked after the end did not end it
        await self._drain(follower)
        if state is None:
            if kill_reason is not None:
                return describe_exit(None, kill_reason, None)
            return TaskExit(TaskState.FAILED, None, REMOVED_REASON)
        if not self._keep:
            await _remove(self._container)
        return describe_end(state, kill_reason, self._mem_mib)

    async def _close(self, follower: asyncio.Task[bool]) -> None:
        """Stop the background work and close the connection to Docker (also on cancel)."""
        if self._timer is not None:
            self._timer.cancel()
        pending = [follower, *self._signals]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._docker.close()

    async def _follow(self) -> bool:
        """Copy output while the container runs; False if the stream broke off."""
        try:
            await self._logs.copy(follow=True)
            return True
        except (*_DOCKER_ERRORS, OSError) as exc:
            log.warning("task %s: following its output failed: %s", self.task_id, _error_text(exc))
            return False

    async def _drain(self, follower: asyncio.Task[bool]) -> None:
        """Make sure all output is in the sandbox: the stream's end, or a last copy if it broke."""
        try:
            async with asyncio.timeout(LOG_DRAIN_TIMEOUT):  # not wait_for: see corral.waits
                complete = await asyncio.shield(follower)
        except TimeoutError:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            complete = False
        if not complete:
            try:
                await self._logs.copy(follow=False)
            except (*_DOCKER_ERRORS, OSError) as exc:
                log.warning("task %s: output incomplete: %s", self.task_id, _error_text(exc))

    async def _end_state(self) -> JSON | None:
        """Wait for the container to stop; its ``State``, None if it was removed meanwhile.

        Retries while Docker cannot be reached: it may be restarting.
        """
        delay = 0.5
        while True:
            try:
                await self._container.wait()
                info = await self._container.show()
                state: JSON = info["State"]
                if not state.get("Running"):
                    return state
            except _DOCKER_ERRORS as exc:
                if isinstance(exc, aiodocker.DockerError) and exc.status == 404:
                    return None
                log.warning(
                    "task %s: waiting for its container: %s", self.task_id, _error_text(exc)
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


async def _image_present(docker: aiodocker.Docker, image: str) -> bool:
    try:
        await docker.images.inspect(image)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise LaunchError(f"cannot inspect image {image}: {_error_text(exc)}") from exc
    return True


async def ensure_image(docker: aiodocker.Docker, spec: DockerSpec) -> None:
    """Pull the image if it is not here, or always with ``force_pull``."""
    if not spec.force_pull and await _image_present(docker, spec.image):
        return
    # force_pull means "must pull", as Marathon's forcePullImage: if the pull fails the launch
    # fails, even with a copy of the image here, rather than run a possibly stale image silently.
    try:
        await docker.images.pull(spec.image)
    except _DOCKER_ERRORS as exc:
        raise LaunchError(f"cannot pull image {spec.image}: {_error_text(exc)}") from exc


async def run_container(docker: aiodocker.Docker, config: JSON, root: Path) -> JSON:
    """Create and start the container (its id noted in the record of the task whose directory
    is ``root``); its inspect data. Nothing is left behind on failure."""
    try:
        container = await docker.containers.create(config)
    except _DOCKER_ERRORS as exc:
        raise LaunchError(f"cannot create the container: {_error_text(exc)}") from exc
    try:
        task_record.append(root, container=container.id)
        await container.start()
        return await container.show()
    except BaseException as exc:
        await _remove(container)
        if isinstance(exc, _DOCKER_ERRORS):
            raise LaunchError(f"cannot start the container: {_error_text(exc)}") from exc
        raise


async def find_container(
    docker: aiodocker.Docker, task_id: str, recorded: str | None
) -> JSON | None:
    """The inspect data of the task's container, found by its label; None if there is none.

    Should there be several, the one ``recorded`` wins, else the newest.
    """
    filters = json.dumps({"label": [f"{TASK_ID_LABEL}={task_id}"]})
    found = await docker.containers.list(all="1", filters=filters)
    if not found:
        return None
    chosen = max(found, key=lambda c: (c.id == recorded, c["Created"] if "Created" in c else 0))
    return await chosen.show()


class DockerExecutor:
    """Runs tasks as containers of the local Docker Engine."""

    driver = "docker"

    def __init__(
        self,
        agent_id: str,
        *,
        allowed_volumes: Sequence[str | os.PathLike[str]],
        data_dir: Path | None = None,
        staging_dir: Path | None = None,
        allow_privileged: bool = False,
        port_range: tuple[int, int] = DEFAULT_RANGE,
        port_pool: PortPool | None = None,
        keep_containers: bool = False,
        socket: str = DEFAULT_SOCKET,
        hostname: str | None = None,
    ) -> None:
        """Set up; Docker is first asked at the first ``start`` or ``recover``.

        ``allowed_volumes``: host paths under which tasks may mount volumes; ``data_dir``: the
        agent's own, where no volume may be even under an allowed path (the sandbox is mounted
        by the executor itself); ``staging_dir``: where volumes are pinned before Docker mounts
        them (default ``/run/corral/volumes/<agent id>``, never inside a sandbox);
        ``port_range``: host ports handed out for ``hostPort: 0``, both ends included, unless
        ``port_pool`` is given (the agent's one pool, shared with its other executors, so they
        never hand out the same port); ``keep_containers`` leaves stopped
        containers for debugging; ``hostname`` is the tasks' ``HOST`` (default: this machine's
        name).
        """
        self.agent_id = agent_id
        self._allowed = [Path(path) for path in allowed_volumes]
        relative = [str(path) for path in self._allowed if not path.is_absolute()]
        if relative:
            raise ValueError(f"allowed volume paths must be absolute: {', '.join(relative)}")
        self._data_dir = data_dir
        self._staging = staging_dir or Path("/run/corral/volumes") / agent_id
        self._allow_privileged = allow_privileged
        self._ports = port_pool if port_pool is not None else PortPool(*port_range)
        self._keep = keep_containers
        self._socket = socket
        self._hostname = hostname or sockets.gethostname()

    @classmethod
    async def available(cls, socket: str = DEFAULT_SOCKET) -> bool:
        """Whether a Docker daemon answers on ``socket``; remembers its version for ``limits``."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT), aiodocker.Docker(url=socket) as docker:
                version = await docker.version()
                info = await docker.system.info()
        except (*_DOCKER_ERRORS, OSError, ValueError, TimeoutError) as exc:
            log.info("docker not available on %s: %s", socket, _error_text(exc))
            return False
        _DAEMONS[socket] = DaemonInfo(
            version=str(version.get("Version", "?")),
            memory_limit=bool(info.get("MemoryLimit", True)),
            cpu_limit=bool(info.get("CpuCfsQuota", True)),
        )
        return True

    def limits(self) -> str:
        """One line saying which resource limits Docker enforces here."""
        daemon = _DAEMONS.get(self._socket)
        if daemon is None:
            return "docker: cpus and memory set on each container (daemon not probed)"
        limits = {"cpus": daemon.cpu_limit, "memory": daemon.memory_limit}
        enforced = " and ".join(name for name, on in limits.items() if on) or "no limits"
        missing = " and ".join(name for name, on in limits.items() if not on)
        line = f"docker {daemon.version}: {enforced} enforced by Docker"
        return line + (f" ({missing} not: no cgroup controller for it)" if missing else "")

    def ports(self, task_id: str) -> list[int]:
        """The host ports given to a task (PORT0..n)."""
        return self._ports.held(task_id)

    async def start(self, launch: TaskLaunch, dirs: TaskDirs) -> DockerHandle:
        """Pull the image if needed, create and start the container, or raise ``LaunchError``."""
        spec = launch.docker
        if spec is None:
            raise LaunchError("the docker driver needs a docker section with at least an image")
        sandbox.prepare(dirs)
        try:
            spec_json = task_record.RawJson(launch.model_dump_json())
            os.close(task_record.create(dirs.root, launch=spec_json))
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise LaunchError(f"cannot write the task's record on the agent: {why}") from exc
        for name in STREAM_FILES.values():
            (dirs.sandbox / name).touch()  # readers find them at once, empty until output comes
        check_privilege(spec, self._allow_privileged)
        checked = check_volumes(spec, self._allowed, self._data_dir)
        host_ports = self._ports.reserve(launch.task_id, host_ports_wanted(launch, spec))
        docker = aiodocker.Docker(url=self._socket)
        try:
            await ensure_image(docker, spec)
            # Docker mounts the pinned copies of the checked paths; once the container has
            # started it holds its own mounts, and the pins go.
            staged = stage_volumes(checked, self._staging / launch.task_id)
            try:
                config = container_config(
                    launch,
                    spec,
                    agent_id=self.agent_id,
                    sandbox=dirs.sandbox,
                    host_ports=host_ports,
                    hostname=self._hostname,
                    volume_sources=staged.sources,
                )
                container = await run_container(docker, config, dirs.root)
            except LaunchError as exc:
                # Docker's reason names the host paths it mounted: say which they were instead.
                raise LaunchError(hide_paths(str(exc), self._private(dirs, staged))) from exc
            finally:
                staged.release()
        except BaseException:
            self._ports.release(launch.task_id)
            await docker.close()
            raise
        return self._handle(launch, dirs, docker, container)

    async def recover(self, launch: TaskLaunch, dirs: TaskDirs) -> DockerHandle | TaskExit:
        """Find the task's container by its label: a handle if it runs, else how it ended.

        A container that ended meanwhile gets its output completed and is removed; pins of its
        volumes that a crash left are released.
        """
        release_pins(self._staging / launch.task_id)
        docker = aiodocker.Docker(url=self._socket)
        handed_over = False
        try:
            recorded = task_record.read(dirs.root).container
            container = await find_container(docker, launch.task_id, recorded)
            if container is None or not container["State"].get("Running"):
                return await self._ended(docker, launch, dirs, container)
            spec = launch.docker
            count = len(host_ports_wanted(launch, spec)) if spec is not None else 0
            self._ports.adopt(launch.task_id, ports_of(container, count))
            handle = self._handle(launch, dirs, docker, container)
            handed_over = True
            return handle
        except _DOCKER_ERRORS as exc:
            reason = f"cannot find the container: docker: {_error_text(exc)}"
            return TaskExit(TaskState.FAILED, None, reason)
        finally:
            if not handed_over:
                await docker.close()

    async def _ended(
        self, docker: aiodocker.Docker, launch: TaskLaunch, dirs: TaskDirs, container: JSON | None
    ) -> TaskExit:
        """How a container found stopped (or not found) ended; completes its output."""
        if container is None:
            return TaskExit(TaskState.FAILED, None, GONE_REASON)
        handle = docker.containers.container(container["Id"])
        state: JSON = container["State"]
        if state.get("Status") == "created":
            await _remove(handle)
            return TaskExit(TaskState.FAILED, None, UNSTARTED_REASON)
        try:
            await LogCopier(docker, handle.id, dirs.sandbox).copy(follow=False)
        except (*_DOCKER_ERRORS, OSError) as exc:
            log.warning("task %s: output incomplete: %s", launch.task_id, _error_text(exc))
        if not self._keep:
            await _remove(handle)
        return describe_end(state, None, launch.mem)

    async def open(self, tasks_dir: Path) -> None:
        """Nothing to get ready: each call opens its client."""

    def close(self) -> None:
        """Nothing to give back: dockerd owns the containers' cgroups, and each call its client."""

    def _private(self, dirs: TaskDirs, staged: StagedVolumes) -> dict[str, str]:
        """The agent's own paths a launch touches, and what a user is told instead."""
        names = {str(dirs.sandbox): "the task's sandbox", str(dirs.root): "the task's files"}
        names[str(staged.staging)] = "the pinned volumes"
        names.update({source: f"volumes[{i}]" for i, source in enumerate(staged.sources)})
        if self._data_dir is not None:
            names[str(self._data_dir)] = "the agent's data dir"
        return names

    def _handle(
        self, launch: TaskLaunch, dirs: TaskDirs, docker: aiodocker.Docker, container: JSON
    ) -> DockerHandle:
        return DockerHandle(
            launch.task_id,
            docker,
            container,
            dirs.sandbox,
            mem_mib=launch.mem,
            keep=self._keep,
            on_end=partial(self._ports.release, launch.task_id),
        )
