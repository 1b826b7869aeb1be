"""The agent loop: dial the master, say hello, launch and supervise tasks, report their states.

Every status update goes to the journal before it is sent, and stays there until the master
acknowledges it, so a restart of either side loses none. Tasks with health checks are checked
while they run; a change of their health is a RUNNING update with ``healthy`` set.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from corral import __version__
from corral.agent import sandbox, sandboxes
from corral.agent.executors.base import Executor, LaunchError, TaskDirs, TaskExit, TaskHandle
from corral.agent.health import HealthMonitor
from corral.agent.journal import Journal
from corral.agent.probes import task_probe
from corral.spec.protocol import (
    AGENT_SHUTDOWN,
    Ack,
    AgentResources,
    FileList,
    Heartbeat,
    Hello,
    Kill,
    Launch,
    ListFiles,
    Read,
    ReadResult,
    SandboxFile,
    StatusUpdate,
    TaskLaunch,
    Updates,
    Welcome,
    master_message,
)
from corral.spec.states import TaskState

log = logging.getLogger(__name__)

RUNNING_FILE = "running_since"  # in meta: wall-clock time the task was RUNNING, for health checks


@dataclass
class AgentConfig:
    """How an agent presents itself and where it keeps its files."""

    master_url: str
    token: str | None
    data_dir: Path
    hostname: str
    resources: AgentResources
    attributes: dict[str, str] = field(default_factory=dict)
    allowed_volumes: list[str] = field(default_factory=list)  # besides its own data dir
    allow_privileged: bool = False
    port_range: tuple[int, int] = (31000, 32000)
    keep_containers: bool = False
    keep_sandboxes: float = 7 * 24 * 3600.0  # seconds a finished task's sandbox is kept

    @property
    def volume_roots(self) -> list[str]:
        """Host paths under which containers may mount volumes: its data dir and the allowed."""
        return [str(self.data_dir.resolve()), *self.allowed_volumes]


@dataclass
class RunningTask:
    """A task this agent supervises."""

    launch: TaskLaunch
    dirs: TaskDirs
    handle: TaskHandle | None = None
    kill_reason: str | None = None  # set when the agent or the master asked it to stop
    watcher: asyncio.Task[None] | None = None
    health: HealthMonitor | None = None  # while its health checks run


def channel_url(master_url: str) -> str:
    """The WebSocket URL of the agent channel of a master at ``http(s)://host:port``."""
    base = master_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + "/api/v1/agent/channel"


def load_agent_id(data_dir: Path) -> str:
    """The agent's id, kept in its data dir so that a restart is the same agent."""
    path = data_dir / "agent.id"
    if path.exists():
        return path.read_text().strip()
    agent_id = uuid.uuid4().hex[:12]
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(agent_id + "\n")
    return agent_id


def _running_for(dirs: TaskDirs) -> float:
    """Seconds a recovered task has been RUNNING (0 if unknown: its grace periods start anew)."""
    try:
        since = float((dirs.meta / RUNNING_FILE).read_text())
    except (OSError, ValueError):
        return 0.0
    return max(0.0, time.time() - since)


class Agent:
    """One node's agent."""

    def __init__(self, config: AgentConfig, executors: Mapping[str, Executor]) -> None:
        self.config = config
        self.executors = dict(executors)
        self.id = load_agent_id(config.data_dir)
        self.tasks: dict[str, RunningTask] = {}
        self.journal = Journal(config.data_dir / "journal.jsonl")
        self._ws: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._sent = 0  # highest seq sent on the current connection
        self._flusher: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = asyncio.Event()
        self.heartbeat_interval = 1.0

    @property
    def tasks_dir(self) -> Path:
        """Where task sandboxes live."""
        return self.config.data_dir / "tasks"

    # --- connection

    async def run(self) -> None:
        """Recover tasks of an earlier run, then stay connected to the master until stopped."""
        await self.recover()
        collector = asyncio.create_task(self._collect_sandboxes(), name="sandbox collector")
        try:
            await self._stay_connected()
        finally:
            collector.cancel()

    async def _collect_sandboxes(self, every: float = 3600.0) -> None:
        while True:
            removed = sandboxes.collect(self.tasks_dir, time.time(), self.config.keep_sandboxes)
            if removed:
                log.info("removed %d old sandboxes", len(removed))
            await asyncio.sleep(every)

    async def _stay_connected(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                await self._connect_once()
                delay = 0.2
            except (OSError, ConnectionClosed, InvalidStatus, TimeoutError) as e:
                log.info("master at %s not reachable (%s); retrying", self.config.master_url, e)
            self.connected.clear()
            if not self._stopping:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _connect_once(self) -> None:
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        url = channel_url(self.config.master_url)
        # No per-message compression: the messages are small and it costs CPU on both sides.
        async with connect(url, additional_headers=headers, max_size=2**24, compression=None) as ws:
            async with self._send_lock:
                hello = self._hello()
                await ws.send(hello.model_dump_json())
                self._sent = max((u.seq for u in hello.unacked), default=0)
                self._ws = ws
            heartbeat: asyncio.Task[None] | None = None
            try:
                async for raw in ws:
                    msg = master_message.validate_json(raw)
                    if isinstance(msg, Welcome):
                        self.heartbeat_interval = msg.heartbeat_interval
                        heartbeat = heartbeat or asyncio.create_task(self._heartbeats(ws))
                        self.connected.set()
                        await self._flush()
                    else:
                        await self._handle(msg)
            finally:
                self._ws = None
                if heartbeat is not None:
                    heartbeat.cancel()

    def _hello(self) -> Hello:
        limits = "; ".join(f"{d}: {e.limits()}" for d, e in sorted(self.executors.items()))
        return Hello(
            agent_id=self.id,
            hostname=self.config.hostname,
            resources=self.config.resources,
            attributes=self.config.attributes,
            drivers=sorted(self.executors),
            running=sorted(self.tasks),
            unacked=self.journal.unacked(),
            cgroups=limits,
            version=__version__,
            volume_roots=self.config.volume_roots,
            allow_privileged=self.config.allow_privileged,
        )

    async def _heartbeats(self, ws: ClientConnection) -> None:
        beat = Heartbeat().model_dump_json()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(beat)

    async def _send(self, message: str) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(message)

    async def _flush(self) -> None:
        """Send journal entries not yet sent on this connection, in order."""
        async with self._send_lock:
            # Loops because updates may be journaled while a send is under way.
            while self._ws is not None:
                unsent = [u for u in self.journal.unacked() if u.seq > self._sent]
                if not unsent:
                    return
                self._sent = unsent[-1].seq
                await self._send(Updates(updates=unsent).model_dump_json())

    async def _handle(self, msg: Any) -> None:
        if isinstance(msg, Ack):
            self.journal.ack(msg.seq)
        elif isinstance(msg, Launch):
            await self.launch(msg.task)
        elif isinstance(msg, Kill):
            await self.kill(msg.task_id, msg.grace, msg.reason or "killed")
        elif isinstance(msg, Read):
            await self._send(self.read(msg).model_dump_json())
        elif isinstance(msg, ListFiles):
            await self._send(self.list_files(msg).model_dump_json())

    # --- status reports

    async def report(
        self,
        task_id: str,
        state: TaskState,
        reason: str = "",
        exit_code: int | None = None,
        ports: list[int] | None = None,
        healthy: bool | None = None,
    ) -> None:
        """Journal a status update, then send it if connected.

        ``healthy`` (with RUNNING) tells the task's health after a check changed it.
        """
        update = StatusUpdate(
            seq=self.journal.next_seq(),
            task_id=task_id,
            state=state,
            time=time.time(),
            reason=reason,
            exit_code=exit_code,
            ports=ports or None,
            healthy=healthy,
        )
        self.journal.append(update)
        if state.terminal:
            done = self.tasks_dir / task_id / "meta" / "done"
            with contextlib.suppress(OSError):
                done.touch()
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Send soon: updates made in the same turn of the loop then go in one message."""
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    # --- tasks

    async def launch(self, launch: TaskLaunch) -> None:
        """Start a task (a repeated launch of a known task is ignored)."""
        if launch.task_id in self.tasks or self._stopping:
            return
        dirs = TaskDirs(self.tasks_dir / launch.task_id)
        if (dirs.meta / "done").exists():
            return  # it ran and ended here already; the master has (or will get) its report
        # HOST: the node as the cluster names it (Marathon's and Mesos' variable).
        launch = launch.model_copy(update={"env": {"HOST": self.config.hostname, **launch.env}})
        rt = RunningTask(launch, dirs)
        self.tasks[launch.task_id] = rt
        executor = self.executors.get(launch.driver)
        if executor is None:
            del self.tasks[launch.task_id]
            await self.report(
                launch.task_id,
                TaskState.ERROR,
                f"driver {launch.driver!r} is not available on {self.config.hostname}",
            )
            return
        await self.report(launch.task_id, TaskState.STARTING)
        # Starting can take long (an image pull): the channel goes on meanwhile.
        rt.watcher = asyncio.create_task(self._start(rt, executor), name=f"{launch.task_id}")

    async def _start(self, rt: RunningTask, executor: Executor) -> None:
        task_id = rt.launch.task_id
        try:
            rt.handle = await executor.start(rt.launch, rt.dirs)
        except (LaunchError, OSError) as e:
            del self.tasks[task_id]
            reason = str(e) if isinstance(e, LaunchError) else f"could not start: {e}"
            await self.report(task_id, TaskState.FAILED, reason)
            return
        await self.report(task_id, TaskState.RUNNING, ports=executor.ports(task_id))
        if rt.kill_reason is not None:  # a kill came while it was starting
            await rt.handle.kill(rt.launch.kill_grace)
        else:
            with contextlib.suppress(OSError):  # without it, a restarted agent starts anew
                sandbox.write_atomic(rt.dirs.meta / RUNNING_FILE, f"{time.time()}\n")
            self._check_health(rt, executor)
        await self._watch(rt)

    def _check_health(self, rt: RunningTask, executor: Executor, since: float = 0.0) -> None:
        """Run the task's health checks, if it has any; ``since``: seconds it has been RUNNING."""
        handle = rt.handle
        if not rt.launch.health_checks or handle is None or rt.kill_reason is not None:
            return
        task_id = rt.launch.task_id

        async def on_verdict(healthy: bool, message: str) -> None:
            if rt.kill_reason is None and self.tasks.get(task_id) is rt:
                await self.report(task_id, TaskState.RUNNING, message, healthy=healthy)

        async def on_failed(reason: str) -> None:
            await self.kill(task_id, None, reason)

        rt.health = HealthMonitor(
            rt.launch.health_checks,
            task_probe(executor.ports(task_id), handle.run_command),
            on_verdict=on_verdict,
            on_failed=on_failed,
            started=time.monotonic() - since,
        )
        rt.health.start()

    async def _watch(self, rt: RunningTask) -> None:
        assert rt.handle is not None
        limit = rt.launch.max_runtime
        try:
            ended = await asyncio.wait_for(asyncio.shield(rt.handle.wait()), limit)
        except TimeoutError:
            rt.kill_reason = rt.kill_reason or f"max run time of {limit:g}s exceeded"
            if rt.health is not None:
                await rt.health.stop()
            await rt.handle.kill(rt.launch.kill_grace)
            ended = await rt.handle.wait()
        await self._ended(rt, ended)

    async def _ended(self, rt: RunningTask, ended: TaskExit) -> None:
        if rt.health is not None:
            await rt.health.stop()
        state, reason = ended.state, ended.reason
        if rt.kill_reason is not None and state is TaskState.KILLED:
            # Why it was killed matters more than how: a run-time limit is a failure.
            failed = rt.kill_reason.startswith("max run time")
            state = TaskState.FAILED if failed else TaskState.KILLED
            reason = f"{rt.kill_reason} ({reason})" if reason else rt.kill_reason
        self.tasks.pop(rt.launch.task_id, None)
        await self.report(rt.launch.task_id, state, reason, ended.exit_code)

    async def kill(self, task_id: str, grace: float | None, reason: str) -> None:
        """Stop a task: SIGTERM, then SIGKILL after the grace period. Idempotent."""
        rt = self.tasks.get(task_id)
        if rt is None:
            return
        rt.kill_reason = rt.kill_reason or reason
        if rt.health is not None:  # a task on its way out is checked no more
            await rt.health.stop()
        if rt.handle is not None:  # else it is starting, and is killed once started
            await rt.handle.kill(rt.launch.kill_grace if grace is None else grace)

    def list_files(self, msg: ListFiles, limit: int = 1000) -> FileList:
        """The files of a task's sandbox, sorted by path (at most ``limit``)."""
        sandbox = TaskDirs(self.tasks_dir / msg.task_id).sandbox
        if not sandbox.is_dir():
            return FileList(request_id=msg.request_id, error=f"no sandbox for {msg.task_id!r} here")
        found: list[SandboxFile] = []
        for path in sorted(sandbox.rglob("*")):
            if len(found) == limit:
                return FileList(request_id=msg.request_id, files=found, truncated=True)
            with contextlib.suppress(OSError):  # it may vanish while we look
                if path.is_file() and not path.is_symlink():
                    st = path.stat()
                    rel = str(path.relative_to(sandbox))
                    found.append(SandboxFile(path=rel, size=st.st_size, mtime=st.st_mtime))
        return FileList(request_id=msg.request_id, files=found)

    def _sandbox_path(self, task_id: str, name: str) -> Path | None:
        """``name`` inside the task's sandbox, or None if it would lead out of it."""
        sandbox = TaskDirs(self.tasks_dir / task_id).sandbox.resolve()
        path = (sandbox / name).resolve()
        return path if path.is_relative_to(sandbox) and path != sandbox else None

    def read(self, msg: Read) -> ReadResult:
        """Read part of a file of a task's sandbox (its stdout, stderr, or what it wrote)."""
        path = self._sandbox_path(msg.task_id, msg.file)
        if path is None:
            return ReadResult(request_id=msg.request_id, error=f"no file {msg.file!r}")
        running = msg.task_id in self.tasks
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(msg.offset)
                data = f.read(msg.length)
        except FileNotFoundError:
            if running:  # not written yet
                return ReadResult(request_id=msg.request_id, next_offset=msg.offset, running=True)
            return ReadResult(request_id=msg.request_id, error=f"no file {msg.file!r} here")
        except OSError as e:  # a directory, or unreadable
            return ReadResult(request_id=msg.request_id, error=f"cannot read {msg.file!r}: {e}")
        # A multi-byte character cut at the end of the chunk is left for the next read.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(data, final=not running and len(data) < msg.length)
        used = len(data) - len(decoder.getstate()[0])
        return ReadResult(
            request_id=msg.request_id,
            data=text,
            next_offset=msg.offset + used,
            size=size,
            running=running,
        )

    # --- restart and shutdown

    async def recover(self) -> None:
        """Find tasks an earlier agent process started and did not see end."""
        if not self.tasks_dir.exists():
            return
        for root in sorted(self.tasks_dir.iterdir()):
            dirs = TaskDirs(root)
            spec = dirs.meta / "launch.json"
            if (dirs.meta / "done").exists() or not spec.exists():
                continue
            launch = TaskLaunch.model_validate(json.loads(spec.read_text()))
            executor = self.executors.get(launch.driver)
            if executor is None:
                await self.report(launch.task_id, TaskState.LOST, "driver gone after restart")
                continue
            found = await executor.recover(launch, dirs)
            rt = RunningTask(launch, dirs)
            if isinstance(found, TaskExit):
                await self._ended(rt, found)
            else:
                rt.handle = found
                self.tasks[launch.task_id] = rt
                self._check_health(rt, executor, _running_for(dirs))
                rt.watcher = asyncio.create_task(self._watch(rt))
                log.info("re-attached to task %s", launch.task_id)

    async def stop(self, timeout: float = 30.0) -> None:
        """Kill every task, wait for their reports to be acknowledged, then disconnect."""
        self._stopping = True
        running = list(self.tasks.values())
        for rt in running:
            rt.kill_reason = rt.kill_reason or AGENT_SHUTDOWN
            if rt.health is not None:
                await rt.health.stop()
            if rt.handle is not None:
                await rt.handle.kill(rt.launch.kill_grace)
        watchers = [rt.watcher for rt in running if rt.watcher is not None]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if watchers:
            await asyncio.wait(watchers, timeout=timeout)
        while self.journal.unacked() and self._ws is not None and loop.time() < deadline:
            await asyncio.sleep(0.02)  # acks arrive on the connection's reader task
        ws = self._ws
        if ws is not None:
            await ws.close()
        self.journal.close()
