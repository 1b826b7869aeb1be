"""The agent loop: dial the master, say hello, launch and supervise tasks, report their states.

Every status update goes to the journal before it is sent, and stays there until the master
acknowledges it, so a restart of either side loses none. Tasks with health checks are checked
while they run; news of their health is a RUNNING update with ``healthy`` and ``checks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from corral import __version__
from corral.agent import gangs, sandbox_files, sandboxes, task_record
from corral.agent.execs import ExecSessions
from corral.agent.executors.base import Executor, LaunchError, TaskDirs, TaskExit, TaskHandle
from corral.agent.executors.docker_config import SANDBOX_MOUNT
from corral.agent.health import HealthMonitor, HealthReport
from corral.agent.journal import Journal
from corral.agent.probes import task_probe
from corral.agent.rsh import RshRelays
from corral.clock import Clock, SystemClock
from corral.spec.execs import ExecCancel, ExecExit, ExecInput, ExecOpen, ExecOutput, ExecResize
from corral.spec.protocol import (
    AGENT_SHUTDOWN,
    NOT_LEADER,
    Ack,
    AgentResources,
    FileList,
    GpuDevice,
    Heartbeat,
    Hello,
    Kill,
    Launch,
    Launches,
    ListFiles,
    Read,
    ReadResult,
    StatusUpdate,
    TaskLaunch,
    Updates,
    Welcome,
    master_message,
)
from corral.spec.services import HealthCheckStatus
from corral.spec.states import TaskState

log = logging.getLogger(__name__)

AGAIN = "ended here before: "  # the reason's prefix when a launch finds the task ended here


RETRY_FIRST = 0.2  # seconds before dialling again (the next master) after a failure
RETRY_MOST = 2.0  # the longest wait between dials: a new leader is found within it
# While the agent is busy (BUSY_FROM tasks or more), messages of updates go at most once per
# COALESCE seconds: a few updates each, a master spends most of its time per message, not per
# update (Nomad's clients batch allocation updates every 200 ms). A quiet agent's updates go
# at once: a lone task's RUNNING is seen without delay.
COALESCE = 0.010
BUSY_FROM = 4
# A master that answers no ping for this long is given up on (frozen, or cut off: a dead one's
# connection is closed by its kernel at once), so the agent finds the new leader well before
# the new leader's loss timeout for it (8 s by default) runs out.
PING_EVERY = 1.0
PING_TIMEOUT = 4.0


@dataclass
class AgentConfig:
    """How an agent presents itself and where it keeps its files."""

    master_urls: list[str]  # every master's; the agent finds the one that leads
    token: str | None
    data_dir: Path
    hostname: str
    resources: AgentResources
    attributes: dict[str, str] = field(default_factory=dict)
    allowed_volumes: list[str] = field(default_factory=list)
    allow_privileged: bool = False
    port_range: tuple[int, int] = (31000, 32000)
    keep_containers: bool = False
    keep_sandboxes: float = 7 * 24 * 3600.0  # seconds a finished task's sandbox is kept
    max_output: int = 1024 * 1024 * 1024  # bytes of stdout + stderr a task may write
    gpus: list[GpuDevice] = field(default_factory=list)  # as many as resources.gpus counts

    @property
    def volume_roots(self) -> list[str]:
        """Host paths under which containers may mount volumes: the allowed ones. Never the
        data dir: its sandboxes and journal are no task's to mount (its own sandbox is mounted
        by the executor)."""
        return list(self.allowed_volumes)


@dataclass
class RunningTask:
    """A task this agent supervises."""

    launch: TaskLaunch
    dirs: TaskDirs
    handle: TaskHandle | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)  # starting is over, either way
    kill_reason: str | None = None  # set when the agent or the master asked it to stop
    failed: bool = False  # it was stopped for breaking a limit: it ends FAILED, not KILLED
    finish: bool = False  # it was stopped because its work is done: it ends FINISHED
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


def _start_failure(e: Exception) -> str:
    """Why a task could not start, for its user: no paths of the agent's disk, no traceback."""
    if isinstance(e, LaunchError):
        return str(e)
    if isinstance(e, OSError):
        return f"could not start: {e.strerror or type(e).__name__}"
    log.error("starting a task failed", exc_info=e)
    return f"could not start: {type(e).__name__}: {e}"


def _running_for(record: task_record.TaskRecord, now: float) -> float:
    """Seconds a recovered task has been RUNNING at ``now`` (0 if unknown: its grace periods
    start anew)."""
    if record.running_since is None:
        return 0.0
    return max(0.0, now - record.running_since)


class Agent:
    """One node's agent."""

    def __init__(
        self, config: AgentConfig, executors: Mapping[str, Executor], clock: Clock | None = None
    ) -> None:
        self.config = config
        self.executors = dict(executors)
        self.clock = clock or SystemClock()
        self.id = load_agent_id(config.data_dir)
        self.tasks: dict[str, RunningTask] = {}
        self.journal = Journal(config.data_dir / "journal.jsonl")
        self.tasks_dir = config.data_dir.absolute() / "tasks"  # where task sandboxes live
        self._ws: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._sent = 0  # highest seq sent on the current connection
        self._flusher: asyncio.Task[None] | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._last_sent = -math.inf  # loop time of the last message of updates
        self.coalesce, self.busy_from = COALESCE, BUSY_FROM
        self._answering: set[asyncio.Task[None]] = set()  # reads being answered
        self.execs = ExecSessions(self._send_message)  # commands run in tasks for the master
        self.rsh = RshRelays(self._send_message)  # the remote shells of gang ranks
        self._stopping = False
        self.connected = asyncio.Event()
        self.heartbeat_interval = 1.0

    # --- connection

    async def run(self) -> None:
        """Recover tasks of an earlier run, then stay connected to the master until stopped."""
        for executor in self.executors.values():
            await executor.open(self.tasks_dir)
        await self.recover()
        collector = asyncio.create_task(self._collect_sandboxes(), name="sandbox collector")
        police = asyncio.create_task(self._police_output(), name="output limit")
        try:
            await self._stay_connected()
        finally:
            collector.cancel()
            police.cancel()

    async def _collect_sandboxes(self, every: float = 3600.0) -> None:
        while True:
            now = self.clock.now()
            removed = sandboxes.collect(self.tasks_dir, now, self.config.keep_sandboxes)
            if removed:
                log.info("removed %d old sandboxes", len(removed))
            await asyncio.sleep(every)

    async def _stay_connected(self) -> None:
        """Dial the masters in turn until one takes us: a follower names the leader, whom we
        dial next; a master that does not answer, or hangs up, makes us try the next one."""
        masters = self.config.master_urls
        turn = 0
        leader: str | None = None
        delay = RETRY_FIRST
        # Each failed dial is a warning: an agent that cannot reach its master must say so.
        while not self._stopping:
            url = leader or masters[turn % len(masters)]
            try:
                await self._connect_once(url)
                delay = RETRY_FIRST
            except ConnectionClosed as e:
                named = e.rcvd.reason if e.rcvd is not None and e.rcvd.code == NOT_LEADER else None
                if named is None:
                    log.warning("master at %s hung up (%s); trying the next", url, e)
                else:
                    log.warning("master at %s does not lead; the leader: %s", url, named or "none")
                leader = named if named and named != url else None
            except (OSError, InvalidStatus, TimeoutError) as e:
                log.warning("master at %s not reachable (%s); trying the next", url, e)
                leader = None
            except Exception:
                # Whatever went wrong, an agent that stops dialling is lost with all its tasks.
                log.exception("connection to the master failed; dialling again")
                leader = None
            self.connected.clear()
            if leader is not None:
                continue  # dial the leader named at once
            turn += 1
            if not self._stopping:
                await asyncio.sleep(delay)
                # Once around the masters at the shortest interval, then slower.
                if turn % len(masters) == 0:
                    delay = min(delay * 2, RETRY_MOST)

    async def _connect_once(self, master_url: str) -> None:
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        url = channel_url(master_url)
        # No per-message compression: the messages are small and it costs CPU on both sides.
        async with connect(
            url,
            additional_headers=headers,
            max_size=2**24,
            compression=None,
            ping_interval=PING_EVERY,
            ping_timeout=PING_TIMEOUT,
        ) as ws:
            async with self._send_lock:
                hello = self._hello()
                await ws.send(hello.model_dump_json())
                self._sent = max((u.seq for u in hello.unacked), default=0)
                self._ws = ws
            heartbeat: asyncio.Task[None] | None = None
            try:
                async for raw in ws:
                    try:
                        msg = master_message.validate_json(raw)
                    except ValidationError as e:
                        await self._unreadable(raw, e)
                        continue
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
            gpus=self.config.gpus,
            batched_launches=True,
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
        """Send journal entries not yet sent on this connection, in order, one message at a
        time: while the master applies one, the updates made meanwhile wait for its ack and
        then go together (one message and one transaction of the master for many updates
        when it is busy, no wait when it is not)."""
        async with self._send_lock:
            if self._ws is None or self._sent > self.journal.acked:
                return  # the ack of what is in flight flushes again
            unsent = self.journal.unacked_after(self._sent)
            if unsent:
                self._sent = unsent[-1].seq
                self._last_sent = asyncio.get_running_loop().time()
                await self._send(Updates(updates=unsent).model_dump_json())

    async def _handle(self, msg: Any) -> None:
        if isinstance(msg, Ack):
            self.journal.ack(msg.seq)
            self._schedule_flush()
        elif isinstance(msg, Launches):
            for launch in msg.tasks:
                await self.launch(launch)
        elif isinstance(msg, Launch):  # from a master that does not send ``launches``
            await self.launch(msg.task)
        elif isinstance(msg, Kill):
            await self.kill(msg.task_id, msg.grace, msg.reason or "killed", finish=msg.finish)
        elif isinstance(msg, ExecOpen):
            self.execs.open(msg, self._running_handle(msg.task_id))
        elif isinstance(msg, ExecInput):
            self.execs.input(msg)
        elif isinstance(msg, ExecResize):
            await self.execs.resize(msg)
        elif isinstance(msg, ExecCancel):
            await self.execs.cancel(msg)
        elif isinstance(msg, ExecOutput):
            await self.rsh.output(msg)
        elif isinstance(msg, ExecExit):
            await self.rsh.exited(msg)
        elif isinstance(msg, Read | ListFiles):
            # Off the channel's reader: a slow disk must not hold up launches and kills.
            answer = asyncio.create_task(self._answer(msg))
            self._answering.add(answer)
            answer.add_done_callback(self._answering.discard)

    async def _unreadable(self, raw: str | bytes, error: ValidationError) -> None:
        """A message that does not validate is ignored; of ``launches``, only the launches
        that do not (each reported ERROR), the others start."""
        with contextlib.suppress(ValueError, AttributeError):
            msg = json.loads(raw)
            if msg.get("type") == "launches" and isinstance(msg.get("tasks"), list):
                for doc in msg["tasks"]:
                    try:
                        launch = TaskLaunch.model_validate(doc)
                    except ValidationError as e:
                        task_id = doc.get("task_id") if isinstance(doc, dict) else None
                        log.warning("ignored the launch of %s: %s", task_id, e)
                        if isinstance(task_id, str):
                            why = e.errors()[0]["msg"]
                            await self.report(task_id, TaskState.ERROR, f"unreadable launch: {why}")
                    else:
                        await self.launch(launch)
                return
        log.warning("ignored a message the master sent: %s", error)

    async def _running_handle(self, task_id: str) -> TaskHandle | None:
        """The handle of a task running here, once it has started (an exec may come while it
        starts: a gang's mpirun reaches for ranks that started a moment ago); None if it does
        not run here, or is being stopped."""
        rt = self.tasks.get(task_id)
        if rt is None:
            return None
        await rt.started.wait()
        if self.tasks.get(task_id) is not rt or rt.kill_reason is not None:
            return None
        return rt.handle

    async def _send_message(self, message: BaseModel) -> None:
        await self._send(message.model_dump_json())

    async def _answer(self, msg: Read | ListFiles) -> None:
        """Answer a read or a listing: always, with an error if it failed."""
        result: ReadResult | FileList
        try:
            if isinstance(msg, Read):
                result = await asyncio.to_thread(self.read, msg)
            else:
                result = await asyncio.to_thread(self.list_files, msg)
        except Exception as e:  # a bug of ours: the caller still gets an answer
            log.exception("answering %s failed", msg.type)
            error = f"the agent could not answer: {type(e).__name__}"
            if isinstance(msg, Read):
                result = ReadResult(request_id=msg.request_id, error=error)
            else:
                result = FileList(request_id=msg.request_id, error=error)
        await self._send(result.model_dump_json())

    # --- status reports

    async def report(
        self,
        task_id: str,
        state: TaskState,
        reason: str = "",
        exit_code: int | None = None,
        ports: list[int] | None = None,
        healthy: bool | None = None,
        checks: list[HealthCheckStatus] | None = None,
    ) -> None:
        """Journal a status update, then send it if connected.

        ``healthy`` (with RUNNING) tells the task's health after a check changed it, ``checks``
        the records of its health checks.
        """
        update = StatusUpdate(
            seq=self.journal.next_seq(),
            task_id=task_id,
            state=state,
            time=self.clock.now(),
            reason=reason,
            exit_code=exit_code,
            ports=ports or None,
            healthy=healthy,
            checks=checks,
        )
        self.journal.append(update)
        if state.terminal:
            end = {"state": state.value, "reason": reason, "exit_code": exit_code}
            with contextlib.suppress(OSError):  # a full disk: the journal still has the end
                task_record.append(self.tasks_dir / task_id, end=end)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Send soon: updates made in the same turn of the loop then go in one message; while
        the agent is busy, not before ``coalesce`` seconds after the last message."""
        if self._flush_timer is not None or (
            self._flusher is not None and not self._flusher.done()
        ):
            return
        loop = asyncio.get_running_loop()
        wait = self._last_sent + self.coalesce - loop.time()
        if wait > 0 and len(self.tasks) >= self.busy_from:
            self._flush_timer = loop.call_later(wait, self._flush_when_due)
        else:
            self._flusher = asyncio.create_task(self._flush())

    def _flush_when_due(self) -> None:
        self._flush_timer = None
        self._flusher = asyncio.create_task(self._flush())

    # --- tasks

    async def launch(self, launch: TaskLaunch) -> None:
        """Start a task. A launch of a task that runs here already changes nothing; one of a task
        that ran and ended here is answered with that end again (the master lost it)."""
        if self._stopping:
            return
        if launch.task_id in self.tasks:
            log.info("launch of %s ignored: it runs here already", launch.task_id)
            return
        dirs = TaskDirs(self.tasks_dir / launch.task_id)
        record = task_record.read(dirs.root)
        if record.ended:
            await self._report_end_again(launch.task_id, record)
            return
        # HOST: the node as the cluster names it (Marathon's and Mesos' variable).
        launch = launch.model_copy(update={"env": {"HOST": self.config.hostname, **launch.env}})
        seen = SANDBOX_MOUNT if launch.driver == "docker" else str(dirs.sandbox)
        launch = gangs.rank_launch(launch, seen)  # a gang's rank: its place, its hostfile...
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

    async def _report_end_again(self, task_id: str, record: task_record.TaskRecord) -> None:
        try:
            end: Any = record.end
            state = TaskState(end["state"])
            reason, exit_code = str(end["reason"]), end["exit_code"]
        except (ValueError, KeyError, TypeError):
            state, reason, exit_code = TaskState.LOST, "ran here before; its end is unknown", None
        log.warning("launch of %s, which ended here already: reporting %s", task_id, state)
        reason = f"{AGAIN}{reason.removeprefix(AGAIN)}"  # said once, however often it is asked
        await self.report(task_id, state, reason, exit_code)

    async def _start(self, rt: RunningTask, executor: Executor) -> None:
        task_id = rt.launch.task_id
        try:
            if rt.launch.gang is not None:
                gangs.prepare(rt.launch.gang, rt.dirs.sandbox)
            rt.handle = await executor.start(rt.launch, rt.dirs)
        except Exception as e:
            # Whatever the cause, the task must end with a reason, not stay STARTING for ever.
            rt.started.set()
            del self.tasks[task_id]
            await self.report(task_id, TaskState.FAILED, _start_failure(e))
            return
        rt.started.set()
        await self.report(task_id, TaskState.RUNNING, ports=executor.ports(task_id))
        if rt.kill_reason is not None:  # a kill came while it was starting
            await rt.handle.kill(rt.launch.kill_grace)
        else:
            if rt.launch.health_checks:  # a restarted agent needs it for their grace periods
                with contextlib.suppress(OSError):  # without it, a restarted agent starts anew
                    task_record.append(rt.dirs.root, running_since=self.clock.now())
            self._check_health(rt, executor)
            self._answer_rsh(rt)
        await self._watch(rt)

    def _answer_rsh(self, rt: RunningTask) -> None:
        """Answer the remote shell of a gang's rank (mpirun's, in rank 0)."""
        if rt.launch.gang is not None:
            self.rsh.watch(rt.launch.task_id, rt.dirs.sandbox / gangs.CORRAL_DIR)

    def _check_health(self, rt: RunningTask, executor: Executor, since: float = 0.0) -> None:
        """Run the task's health checks, if it has any; ``since``: seconds it has been RUNNING."""
        handle = rt.handle
        if not rt.launch.health_checks or handle is None or rt.kill_reason is not None:
            return
        task_id = rt.launch.task_id

        async def on_report(report: HealthReport) -> None:
            if rt.kill_reason is None and self.tasks.get(task_id) is rt:
                await self.report(
                    task_id,
                    TaskState.RUNNING,
                    report.message,
                    healthy=report.healthy,
                    checks=report.checks,
                )

        async def on_failed(reason: str) -> None:
            await self.kill(task_id, None, reason)

        rt.health = HealthMonitor(
            rt.launch.health_checks,
            task_probe(executor.ports(task_id), handle.run_command),
            on_report=on_report,
            on_failed=on_failed,
            started=self.clock.monotonic() - since,
            clock=self.clock.monotonic,
        )
        rt.health.start()

    async def _watch(self, rt: RunningTask) -> None:
        assert rt.handle is not None
        limit = rt.launch.max_runtime
        try:
            # Not wait_for (see corral.waits); a handle's wait outlives a cancelled call.
            async with asyncio.timeout(limit):
                ended = await rt.handle.wait()
        except TimeoutError:
            await self._stop_over_limit(rt, f"max run time of {limit:g}s exceeded")
            ended = await rt.handle.wait()
        await self._ended(rt, ended)

    async def _stop_over_limit(self, rt: RunningTask, reason: str) -> None:
        """Kill a task that broke one of its limits: it ends FAILED with ``reason``."""
        if rt.kill_reason is None:
            rt.kill_reason, rt.failed = reason, True
        await self.kill(rt.launch.task_id, None, reason)

    async def _police_output(self, every: float = 1.0) -> None:
        """Stop tasks whose stdout and stderr outgrow ``max_output`` (a full disk would strand
        every task of the agent)."""
        cap = self.config.max_output
        while True:
            await asyncio.sleep(every)
            for rt in list(self.tasks.values()):
                if rt.handle is None or rt.kill_reason is not None:
                    continue
                written = 0
                for name in ("stdout", "stderr"):
                    with contextlib.suppress(OSError):
                        written += (rt.dirs.sandbox / name).stat().st_size
                if written > cap:
                    why = f"stdout and stderr exceeded the agent's limit of {cap // 2**20} MiB"
                    await self._stop_over_limit(rt, why)

    async def _ended(self, rt: RunningTask, ended: TaskExit) -> None:
        if rt.health is not None:
            await rt.health.stop()
        state, reason = ended.state, ended.reason
        if rt.kill_reason is not None and state is TaskState.KILLED:
            # Why it was killed matters more than how: a broken limit is a failure, a task
            # whose work is done has finished.
            state = TaskState.FAILED if rt.failed else TaskState.KILLED
            reason = f"{rt.kill_reason} ({reason})" if reason else rt.kill_reason
            if rt.finish:
                state, reason = TaskState.FINISHED, rt.kill_reason
        self.tasks.pop(rt.launch.task_id, None)
        await self.execs.end_task(rt.launch.task_id)
        await self.rsh.unwatch(rt.launch.task_id)
        if rt.launch.gang is not None:
            await asyncio.to_thread(gangs.remove_session_base, rt.launch, rt.dirs.sandbox)
        await self.report(rt.launch.task_id, state, reason, ended.exit_code)

    async def kill(
        self, task_id: str, grace: float | None, reason: str, *, finish: bool = False
    ) -> None:
        """Stop a task: SIGTERM, then SIGKILL after the grace period. Idempotent. With
        ``finish`` (and no earlier kill) it ends FINISHED: its work is done."""
        rt = self.tasks.get(task_id)
        if rt is None:
            return
        if rt.kill_reason is None:
            rt.kill_reason, rt.finish = reason, finish
        if rt.health is not None:  # a task on its way out is checked no more
            await rt.health.stop()
        if rt.handle is not None:  # else it is starting, and is killed once started
            await rt.handle.kill(rt.launch.kill_grace if grace is None else grace)

    def list_files(self, msg: ListFiles, limit: int = 1000) -> FileList:
        """The regular files of a task's sandbox, sorted by path (at most ``limit``)."""
        sandbox = TaskDirs(self.tasks_dir / msg.task_id).sandbox
        if not sandbox.is_dir():
            return FileList(request_id=msg.request_id, error=f"no sandbox for {msg.task_id!r} here")
        found, truncated = sandbox_files.list_files(sandbox, limit)
        return FileList(request_id=msg.request_id, files=found, truncated=truncated)

    def read(self, msg: Read) -> ReadResult:
        """Read part of a file of a task's sandbox (its stdout, stderr, or what it wrote).

        Blocking file I/O: the channel calls it in a thread.
        """
        running = msg.task_id in self.tasks
        sandbox = TaskDirs(self.tasks_dir / msg.task_id).sandbox
        try:
            data, size = sandbox_files.read_chunk(sandbox, msg.file, msg.offset, msg.length)
        except sandbox_files.NotWritten as e:
            if running:  # not written yet
                return ReadResult(request_id=msg.request_id, next_offset=msg.offset, running=True)
            return ReadResult(request_id=msg.request_id, error=str(e))
        except sandbox_files.FileRefused as e:
            return ReadResult(request_id=msg.request_id, error=str(e))
        return ReadResult(
            request_id=msg.request_id,
            data=data,
            next_offset=msg.offset + len(data),
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
            record = task_record.read(root)
            if record.ended or record.launch is None:
                continue
            try:
                launch = TaskLaunch.model_validate(record.launch)
            except ValidationError as e:
                log.error("task %s: its recorded launch is unreadable: %s", root.name, e)
                await self.report(root.name, TaskState.LOST, "its launch record is unreadable")
                continue
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
                rt.started.set()
                self.tasks[launch.task_id] = rt
                self._check_health(rt, executor, _running_for(record, self.clock.now()))
                self._answer_rsh(rt)
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
        for executor in self.executors.values():
            executor.close()
        while self.journal.unacked() and self._ws is not None and loop.time() < deadline:
            await asyncio.sleep(0.02)  # acks arrive on the connection's reader task
        ws = self._ws
        if ws is not None:
            await ws.close()
        self.journal.close()
