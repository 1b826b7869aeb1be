"""The master process: wires the state, the job and agent handlers and the loops together."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from corral.clock import Clock, SystemClock
from corral.master.accounts import AccountOps
from corral.master.agents import AgentOps
from corral.master.applier import Applier, Kill, Outbox
from corral.master.events import EventBus
from corral.master.execs import ExecRelay
from corral.master.fairshare import DAY, FairShare
from corral.master.jobs import Conflict, JobOps, NotFound
from corral.master.leadership import Leadership
from corral.master.policy.leadership import renew_every
from corral.master.private_queries import PrivateQueries
from corral.master.queries import Queries
from corral.master.records import AgentRecord
from corral.master.scheduling import SchedulingLoop
from corral.master.service_loop import ServiceLoop
from corral.master.services import ServiceOps
from corral.master.state import ClusterState
from corral.master.timers import ScheduleLoop
from corral.master.view import ClusterView
from corral.master.watchdog import Watchdog
from corral.spec.protocol import FileList, ListFiles, Read, ReadResult
from corral.spec.states import TaskState
from corral.store.store import Fenced, Store, StoreFull, StoreUnavailable

# Seconds a thread holds the GIL before another may take it (Python's default is 0.005). The
# API's writes and the scheduler's plans run in worker threads that stay busy for seconds on a
# 100,000-task submit; the event loop, which needs the GIL back after every socket call, then
# waited up to this long each time, and /health took a second to answer.
SWITCH_INTERVAL = 0.001
log = logging.getLogger(__name__)
BY_USER = "killed by user"  # the reason of every kill a user asks for
DEFAULT_URL = "http://127.0.0.1:8080"


class Unavailable(Exception):
    """What was asked needs an agent that is not connected."""


class Master:
    """Desired and actual state, the scheduling loop, and the agents' side of the channel."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        *,
        heartbeat_interval: float = 1.0,
        lost_after: float = 8.0,
        fair_share_half_life: float = DAY,
        preempt_after: float | None = None,
        url: str = DEFAULT_URL,
        lease: float = 2.0,
    ) -> None:
        """``preempt_after``: with preemption on, how many seconds a task of a user below
        their fair share waits before it may evict tasks of users over theirs (None: off)."""
        self.store = store
        self.clock = clock or SystemClock()
        self.bus = EventBus()  # kept across terms: event streams outlive a change of leader
        self.heartbeat_interval = heartbeat_interval
        self.lost_after = lost_after
        self.fair_share_half_life = fair_share_half_life
        self.preempt_after = preempt_after
        self.url = url  # where this master answers, as the others and the agents reach it
        self.lease = lease
        # Set by start(): until then (tests that drive a master by hand) it acts as leader.
        self.leadership: Leadership | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._roles: asyncio.Task[None] | None = None
        self._watchdog: Watchdog | None = None
        self._loaded = False  # the state of the current term is loaded: the API may serve
        self._build()

    def _build(self) -> None:
        """The live records and what works on them, empty: at construction, and again each
        time this master takes the lead (what it knew of an earlier term is stale)."""
        self.state = ClusterState(self.store, self.bus, self.clock)
        self.services = ServiceOps(self.state)
        # The one writer of what the master decides (plans and the policies' effects).
        self.applier = Applier(self.state, self.services)
        self.services.applier = self.applier
        self.jobs = JobOps(self.state, self.applier)
        self.agents = AgentOps(
            self.state,
            self.applier,
            heartbeat_interval=self.heartbeat_interval,
            disconnect_after=3 * self.heartbeat_interval,
            lost_after=self.lost_after,
        )
        self.applier.deliver_later = self.agents.deliver_soon  # kills a transition decides
        # Weights, quotas and decayed usage, read by each scheduling pass.
        self.fair_share = FairShare(self.store, self.fair_share_half_life)
        self.scheduler = SchedulingLoop(
            self.state,
            self.agents,
            self.applier,
            fair_share=self.fair_share,
            preempt_after=self.preempt_after,
            preemptible=self._preemptible,
        )
        self.service_loop = ServiceLoop(self.state, self.services, self.applier, self.agents)
        self.timers = ScheduleLoop(self.state, self.applier)
        # What the API may read: the live records read-only, and the store's history.
        self.view = ClusterView(self.state, self.services, self.fair_share)
        self.queries = Queries(self.view, self.store)
        self.accounts = AccountOps(self.store, self.clock)
        self.accounts.on_change = self._shares_changed
        # Commands run in tasks: corral exec, and the remote shells of gangs' ranks.
        self.execs = ExecRelay(self.state, self.agents.dispatch, self.agents.hostname_of)

    @property
    def leading(self) -> bool:
        """Whether this master leads, its state loaded (one never started, driven by hand,
        does)."""
        return self.leadership is None or (self.leadership.leading and self._loaded)

    @property
    def leader_url(self) -> str | None:
        """Where the leader answers (None: no master leads at the moment)."""
        if self.leadership is None:
            return self.url
        return self.leadership.leader_url

    async def start(self) -> None:
        """Migrate the store and stand as a candidate: the state is loaded and the loops
        started once this master takes the lead (leadership.py)."""
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.store.migrate()
        self.leadership = Leadership(self.store, self.clock, self.url, self.lease)
        self.leadership.start()
        # The state is rebuilt on each taking of the lead: the watchdog asks for the current one.
        self._watchdog = Watchdog(self.clock, lambda: self.state.turn_held())
        self._watchdog.start()
        self._roles = asyncio.create_task(self._follow_the_lease(), name="leadership")

    async def _follow_the_lease(self) -> None:
        """Lead or follow as the lease says, one change at a time; between changes, step down
        if the lease could not be renewed in time (the lease's thread may be stuck on an
        unreachable database)."""
        assert self.leadership is not None
        changes = self.leadership.changes
        while True:
            try:
                # Not asyncio.wait_for: it may lose a cancellation (see corral.waits).
                async with asyncio.timeout(renew_every(self.lease) / 2):
                    change = await changes.get()
            except TimeoutError:
                self.leadership.check("the lease was not renewed in time")
                continue
            try:
                if change.epoch is not None:
                    await self._lead()
                else:
                    await self._follow(change.reason)
            except Exception as e:
                # A master that cannot finish taking the lead must not hold it.
                log.exception("changing role failed")
                self.leadership.lost(f"changing role failed: {e}")

    async def _lead(self) -> None:
        """Taken the lead: load the state from the store, start the loops. The agents dial in
        and are reconciled as they come."""
        await self._stop_loops()
        self._loaded = False
        self._build()
        self.state.attach(asyncio.get_running_loop())  # memory updates run on this loop
        try:
            # In a worker thread: 100,000 waiting tasks take seconds to load, and the loop goes
            # on answering meanwhile (``/health``, the agents' pings). Nothing reads the new
            # state before it is loaded: the API answers "taking the lead" until ``_loaded``.
            await asyncio.to_thread(self._load)
        except (StoreUnavailable, StoreFull, Fenced) as e:
            assert self.leadership is not None
            self.leadership.lost(f"could not load the state: {e}")
            return
        loops = {
            "services": self.service_loop.run_forever(),
            "scheduler": self.scheduler.run_forever(),
            "liveness": self.agents.liveness_loop(),
            "schedules": self.timers.run_forever(),
        }
        self._loops = [
            asyncio.create_task(self._step_down_if_fenced(loop), name=name)
            for name, loop in loops.items()
        ]
        self._loaded = True

    def _load(self) -> None:
        """Fill the new term's records from the store. Agents load first: tasks count against
        them."""
        self.agents.load()
        self.state.load()
        self.services.load()
        self.fair_share.load()

    async def _follow(self, reason: str) -> None:
        """Stepped down: stop the loops and hang up on the agents, which dial again and are
        sent to the leader."""
        log.warning("following: %s", reason)
        self._loaded = False
        await self._stop_loops()
        self.agents.dispatch.hang_up_all()
        self.bus.cut_off_all()

    async def _step_down_if_fenced(self, loop: Coroutine[Any, Any, None]) -> None:
        """Run a loop; once a newer master leads, step down (the store already refuses every
        write of ours)."""
        try:
            await loop
        except Fenced as e:
            if self.leadership is not None:
                self.leadership.lost(str(e))
                return
            log.error("stepping down: %s", e)
            for other in self._loops:
                if other is not asyncio.current_task():
                    other.cancel()

    async def _stop_loops(self) -> None:
        current = asyncio.current_task()
        loops = [loop for loop in self._loops if loop is not current]
        self._loops = []
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError, Fenced):
                await loop

    async def stop(self) -> None:
        """Stop the loops and end our lease (the store stays open for the caller to close)."""
        if self._roles is not None:
            self._roles.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._roles
            self._roles = None
        led = bool(self._loops) and self.leading
        await self._stop_loops()
        if led:  # what ran since the last write of the usage is kept
            self.fair_share.track(self.clock.now(), self.state.held)
            self.fair_share.save(self.clock.now())
        if self._watchdog is not None:
            self._watchdog.stop()
        if self.leadership is not None:
            await asyncio.to_thread(self.leadership.stop)

    def _preemptible(self, service_id: str) -> bool:
        """Whether a preemption may stop the tasks of a service (its spec says so)."""
        rec = self.services.services.get(service_id)
        return rec is not None and rec.spec.preemptible

    def _shares_changed(self) -> None:
        """An admin changed weights, quotas or users: read them again and plan anew (a quota
        raised may let work in)."""
        self.fair_share.reload()
        self.state.wake.set()

    def ensure_admin_token(self, token_file: Path) -> str:
        """The admin token: read from ``token_file``, or created (and written 0600) on the
        first start."""
        return self.accounts.ensure_admin_token(token_file)

    def private_to(self, reader: str) -> Master:
        """This master as a user who may read only their own work sees it: the same state and
        commands, its reads answered by ``PrivateQueries``."""
        seen = copy.copy(self)
        seen.queries = PrivateQueries(self.view, self.store, reader)
        return seen

    # --- kills: the store first, then the agents

    async def kill_job(self, name: str, run: int | None = None) -> None:
        """Kill every live task of a job, or of one of its runs."""
        await self.agents.deliver(Outbox(kills=await self.state.write(self._kill_job, name, run)))

    def _kill_job(self, name: str, run: int | None) -> tuple[Kill, ...]:
        if run is not None and not self.store.runs(name, run):
            raise NotFound(f"run {run} of job {name!r} not found")
        return self.jobs.kill(name, run)

    async def kill_task(self, task_id: str) -> None:
        """Kill one task. A finished task is left as it is."""
        await self.agents.deliver(Outbox(kills=await self.state.write(self._kill_task, task_id)))

    def _kill_task(self, task_id: str) -> tuple[Kill, ...]:
        task = self.state.tasks.get(task_id)
        if task is None:
            if self.store.task(task_id) is None:
                raise NotFound(f"task {task_id!r} not found")
            return ()
        return self.jobs.kill_tasks([task], BY_USER)

    async def kill_service_tasks(
        self, task_ids: list[str], scale: bool = False, force: bool = False
    ) -> list[str]:
        """Kill tasks of services; with ``scale`` their services shrink by as many, otherwise
        they are replaced. Answers the ids of the tasks that were live."""
        ids, kills = await self.state.write(self._kill_service_tasks, task_ids, scale, force)
        await self.agents.deliver(Outbox(kills=kills))
        return ids

    def _kill_service_tasks(
        self, task_ids: list[str], scale: bool, force: bool
    ) -> tuple[list[str], tuple[Kill, ...]]:
        ids = self.services.kill_tasks(task_ids, scale, force)
        victims = [self.state.tasks[i] for i in ids]
        return ids, self.jobs.kill_tasks(victims, BY_USER)

    # --- logs

    def _placed(self, task_id: str) -> tuple[bool, AgentRecord | None]:
        """Whether the task is still pending, and the agent it was placed on (None: never)."""
        row = self.queries.task_row(task_id)  # a task the caller may not read is not found
        if row is None:
            raise NotFound(f"task {task_id!r} not found")
        return row["state"] == TaskState.PENDING.value, self.state.agents.get(row["agent_id"] or "")

    async def _ask(self, agent: AgentRecord, task_id: str, message: dict[str, Any]) -> Any:
        if not agent.connected:
            raise Unavailable(f"agent {agent.hostname} of task {task_id!r} is not connected")
        try:
            return await self.agents.dispatch.ask(agent.id, message, timeout=10.0)
        except (TimeoutError, ConnectionError) as e:
            raise Unavailable(f"agent {agent.hostname} did not answer: {e}") from None

    async def read_file(self, task_id: str, file: str, offset: int, length: int) -> ReadResult:
        """Read part of a file of a task's sandbox, from its agent."""
        pending, agent = await asyncio.to_thread(self._placed, task_id)  # may read the store
        if agent is None:
            # Never placed: no output yet, or (ended before it was placed) none ever.
            return ReadResult(request_id=0, next_offset=offset, running=pending)
        msg = Read(request_id=0, task_id=task_id, file=file, offset=offset, length=length)
        return ReadResult.model_validate(await self._ask(agent, task_id, msg.model_dump()))

    async def list_files(self, task_id: str) -> FileList:
        """The files of a task's sandbox, from its agent."""
        _, agent = await asyncio.to_thread(self._placed, task_id)
        if agent is None:
            return FileList(request_id=0)
        msg = ListFiles(request_id=0, task_id=task_id)
        return FileList.model_validate(await self._ask(agent, task_id, msg.model_dump()))


__all__ = ["Conflict", "Master", "NotFound", "Unavailable"]
