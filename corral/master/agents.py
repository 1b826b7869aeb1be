"""The master's side of the agent channel: registration, status updates, reconciliation and
loss detection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from corral.master.applier import Applier, Outbox
from corral.master.dispatch import Dispatcher
from corral.master.gangs import with_hosts
from corral.master.policy.effects import Excuse, MarkDisconnected
from corral.master.policy.liveness import AgentSilence, Limits, Verdict, liveness
from corral.master.records import AgentRecord, AgentSession, LiveTask, resources_of
from corral.master.state import ClusterState
from corral.spec.protocol import Ack, GpuDevice, Hello, Kill, StatusUpdate, Welcome
from corral.spec.states import AgentState, TaskState
from corral.store.store import Fenced, Refusal

log = logging.getLogger(__name__)

# A ``launches`` message holds launches of about this much JSON at most (one launch may hold
# more: it goes alone), well inside the agent's 16 MiB frames.
LAUNCHES_BYTES = 1 << 20

# The order a task moves through; an update that would move it back is stale and ignored.
_RANK = {
    TaskState.PENDING: 0,
    TaskState.STAGING: 1,
    TaskState.STARTING: 2,
    TaskState.RUNNING: 3,
}


def _is_forward(current: TaskState, new: TaskState) -> bool:
    return new.terminal or _RANK[new] > _RANK[current]


class AgentOps:
    """Handles what agents say, and notices when they fall silent."""

    def __init__(
        self,
        state: ClusterState,
        applier: Applier,
        heartbeat_interval: float = 1.0,
        disconnect_after: float = 3.0,
        lost_after: float = 8.0,
    ) -> None:
        self.state = state
        self.applier = applier
        self.dispatch = Dispatcher()  # the agents' sessions live there, not in their records
        self.heartbeat_interval = heartbeat_interval
        self.disconnect_after = disconnect_after
        self.lost_after = lost_after

    def load(self) -> None:
        """Agents from the store start DISCONNECTED: each has ``lost_after`` to come back."""
        now = self.state.clock.monotonic()
        for row in self.state.store.agents():
            res = row["resources"]
            state = AgentState(row["state"])
            if state is not AgentState.LOST:
                state = AgentState.DISCONNECTED
            self.state.agents[row["id"]] = AgentRecord(
                id=row["id"],
                hostname=row["hostname"],
                total=resources_of(res),
                attributes=dict(row["attributes"]),
                drivers=frozenset(row["drivers"]),
                state=state,
                last_seq=row["last_seq"],
                registered_at=row["registered_at"],
                cgroups=row["cgroups"],
                volume_roots=tuple(row["capabilities"].get("volume_roots", ())),
                privileged=bool(row["capabilities"].get("privileged", False)),
                gpus=tuple(
                    GpuDevice.model_validate(g) for g in row["capabilities"].get("gpus", ())
                ),
                last_heartbeat=row["last_heartbeat"],
                silent_since=now,
            )

    # --- connection life

    async def hello(self, msg: Hello, session: AgentSession) -> AgentRecord:
        """Register (or re-register) an agent, replay its journal, reconcile its tasks."""
        agent = await self.state.write(self._register, msg, session)
        await self.report(agent, msg.unacked)
        await session.send(
            Welcome(agent_id=agent.id, heartbeat_interval=self.heartbeat_interval).model_dump()
        )
        if msg.unacked:
            await session.send(Ack(seq=agent.last_seq).model_dump())
        await self._reconcile(agent, set(msg.running))
        self.state.wake.set()
        return agent

    def _register(self, msg: Hello, session: AgentSession) -> AgentRecord:
        now = self.state.clock.now()
        res = msg.resources
        total = resources_of(res.model_dump())
        known = self.state.agents.get(msg.agent_id)
        with self.state.change() as ch:
            ch.tx.upsert_agent(
                msg.agent_id,
                hostname=msg.hostname,
                resources=res.model_dump(),
                attributes=msg.attributes,
                drivers=msg.drivers,
                state=AgentState.ACTIVE.value,
                cgroups=msg.cgroups,
                capabilities={
                    "volume_roots": msg.volume_roots,
                    "privileged": msg.allow_privileged,
                    "gpus": [g.model_dump() for g in msg.gpus],
                },
                registered_at=now if known is None else known.registered_at,
                last_heartbeat=now,
                **({"last_seq": 0} if known is None else {}),
            )
            agent = known or AgentRecord(
                id=msg.agent_id,
                hostname=msg.hostname,
                total=total,
                attributes=msg.attributes,
                drivers=frozenset(msg.drivers),
                state=AgentState.ACTIVE,
                last_seq=0,
                registered_at=now,
            )
            silent_since = self.state.clock.monotonic()

            def remember(agent: AgentRecord = agent) -> None:
                self.state.agents[agent.id] = agent
                agent.hostname, agent.total = msg.hostname, total
                agent.attributes, agent.drivers = msg.attributes, frozenset(msg.drivers)
                agent.cgroups = msg.cgroups
                agent.volume_roots = tuple(msg.volume_roots)
                agent.privileged = msg.allow_privileged
                agent.gpus = tuple(msg.gpus)
                agent.batched_launches = msg.batched_launches
                agent.last_heartbeat, agent.silent_since = now, silent_since
                # In the same step as the state it gets: a liveness check in between would
                # see it ACTIVE without a connection, and record it DISCONNECTED.
                self.dispatch.attach(agent, session)

            ch.after(remember)  # before the state's update, which agent_state adds
            # A DRAINING agent stays draining across reconnections.
            was = agent.state
            new = AgentState.DRAINING if was is AgentState.DRAINING else AgentState.ACTIVE
            self.applier.agent_state(ch, agent, new, "registered")
        return agent

    async def _reconcile(self, agent: AgentRecord, running: set[str]) -> None:
        """Compare what the agent runs with what the store says it runs, and repair both."""
        mine = [t for t in self.state.tasks.values() if t.agent_id == agent.id]
        to_launch = [t for t in mine if t.state is TaskState.STAGING and t.id not in running]
        gone = [t for t in mine if t.state is not TaskState.STAGING and t.id not in running]
        if gone:
            await self.state.write(self._lose_tasks, agent, gone)
        known = {t.id for t in mine}
        for task_id in sorted(running - known):
            await self.send_kill(agent, task_id, "unknown to the master", grace=None)
        # A STAGING task the agent never got is safe to send again: nothing of it runs there.
        await self.send_launches(agent, to_launch)

    def _lose_tasks(self, agent: AgentRecord, gone: list[LiveTask]) -> None:
        # Seen from the loop before this writer's turn: only those still so.
        gone = [t for t in gone if self.state.tasks.get(t.id) is t and t.agent_id == agent.id]
        with self.state.change() as ch:
            for task in gone:
                reason = f"agent {agent.hostname} no longer knows the task"
                self.applier.transition(ch, task, TaskState.LOST, reason=reason)

    def heartbeat(self, agent: AgentRecord, session: AgentSession) -> None:
        """Note a sign of life (of the agent's current session only)."""
        if self.dispatch.is_current(agent.id, session):
            agent.silent_since = self.state.clock.monotonic()
            agent.last_heartbeat = self.state.clock.now()

    def disconnected(
        self, agent: AgentRecord, session: AgentSession, reason: str = "connection closed"
    ) -> None:
        """The connection closed (or the master gave up on it, and closes it now). Its tasks
        keep their state until the loss timeout. If the store refuses to record it, the
        liveness check sees an ACTIVE agent without a session and records it (and its loss)
        later."""
        if self.dispatch.detach(agent, session):
            self.record_disconnection(agent, reason)

    async def hung_up(
        self, agent: AgentRecord, session: AgentSession, reason: str = "connection closed"
    ) -> None:
        """``disconnected``, its store I/O off the loop (the channel's end)."""
        if self.dispatch.detach(agent, session):
            try:
                await self.state.write(self.record_disconnection, agent, reason)
            except Refusal:
                pass  # the liveness check records it once the store is back (see above)

    def record_disconnection(self, agent: AgentRecord, reason: str) -> None:
        """Record that the agent has no connection, unless it has one again: it may have
        registered on a new one while this waited for the writer's turn."""
        if self.dispatch.session_of(agent.id) is not None:
            return
        with self.state.change() as ch:
            self.applier.apply(ch, [MarkDisconnected(agent.id, reason)], self.state.clock.now())

    # --- status updates

    async def report(self, agent: AgentRecord, updates: list[StatusUpdate]) -> None:
        """``apply_updates``, its store I/O off the loop (the agent channel's)."""
        if any(u.seq > agent.last_seq for u in updates):
            agent.silent_since = self.state.clock.monotonic()
            await self.state.write(self.apply_updates, agent, updates)

    def apply_updates(self, agent: AgentRecord, updates: list[StatusUpdate]) -> None:
        """Apply status updates (in ``seq`` order) in one transaction, each at most once."""
        fresh = [u for u in updates if u.seq > agent.last_seq]
        if not fresh:
            return
        unwanted: list[str] = []
        with self.state.change() as ch:
            for update in fresh:
                task = self.state.tasks.get(update.task_id)
                if task is None or task.agent_id != agent.id:
                    if not update.state.terminal:
                        unwanted.append(update.task_id)  # ended here, or replaced elsewhere
                    continue
                if _is_forward(ch.state_of(task), update.state):
                    self.applier.transition(
                        ch,
                        task,
                        update.state,
                        reason=update.reason,
                        time=update.time,
                        exit_code=update.exit_code,
                        ports=update.ports or (),
                    )
                if update.healthy is not None and ch.state_of(task) is TaskState.RUNNING:
                    self.applier.set_health(ch, task, update.healthy, update.reason, update.time)
                if update.checks is not None and ch.state_of(task) is TaskState.RUNNING:
                    self.applier.set_checks(ch, task, update.checks)
            ch.tx.set_agent_seq(agent.id, fresh[-1].seq)
            ch.after(lambda: self._applied(agent, fresh[-1].seq, unwanted))

    def _applied(self, agent: AgentRecord, seq: int, unwanted: list[str]) -> None:
        agent.last_seq = seq
        agent.silent_since = self.state.clock.monotonic()
        for task_id in unwanted:
            # It runs there but the master does not want it: stop it.
            asyncio.get_running_loop().create_task(
                self.send_kill(agent, task_id, "not wanted by the master", None)
            )

    # --- messages to agents

    async def send_launches(self, agent: AgentRecord, tasks: Sequence[LiveTask]) -> None:
        """Tell the agent to start ``tasks``, in this order: in ``launches`` messages of about
        ``LAUNCHES_BYTES`` of launches at most, or a ``launch`` each to an agent that does not
        take them."""
        if not agent.batched_launches:
            for task in tasks:
                await self.dispatch.send(agent.id, {"type": "launch", "task": self._launch(task)})
            return
        for batch in _batches(tasks, LAUNCHES_BYTES):
            launches = [self._launch(t) for t in batch]
            await self.dispatch.send(agent.id, {"type": "launches", "tasks": launches})

    def _launch(self, task: LiveTask) -> dict[str, Any]:
        """The ``TaskLaunch`` document sent for ``task``: its stored launch with the GPU indices
        it was given and, for a gang's rank, the host of every node of its gang."""
        if task.gang is not None:
            launch = with_hosts(task, self.state.index.of_job(task.job), self.hostname_of)
            return launch.model_dump(mode="json")
        # Stored as a TaskLaunch's JSON when admitted: read as it is, not validated and dumped
        # again for every launch (the agent validates what it is sent).
        document: dict[str, Any] = orjson.loads(task.row.launch.json)
        if task.devices:
            document["gpu_devices"] = list(task.devices)
        return document

    def hostname_of(self, agent_id: str) -> str | None:
        """The hostname of a known agent."""
        agent = self.state.agents.get(agent_id)
        return None if agent is None else agent.hostname

    async def send_kill(
        self,
        agent: AgentRecord,
        task_id: str,
        reason: str,
        grace: float | None,
        *,
        finish: bool = False,
    ) -> None:
        """Tell the agent to stop a task (``finish``: its work is done, it ends FINISHED)."""
        msg = Kill(task_id=task_id, grace=grace, reason=reason, finish=finish)
        await self.dispatch.send(agent.id, msg.model_dump(mode="json"))

    async def deliver(self, out: Outbox) -> None:
        """Send what a committed change asks of agents: its launches (each agent's together),
        then its kills."""
        per_agent: dict[str, tuple[AgentRecord, list[LiveTask]]] = {}
        for task, agent in out.launches:
            per_agent.setdefault(agent.id, (agent, []))[1].append(task)
        for agent, tasks in per_agent.values():
            await self.send_launches(agent, tasks)
        for kill in out.kills:
            await self.send_kill(kill.agent, kill.task.id, kill.reason, None, finish=kill.finish)

    def deliver_soon(self, out: Outbox) -> None:
        """Send what a committed change asks of agents, from a task of its own (the change was
        made where nothing awaits: a status update, a liveness check)."""
        asyncio.get_running_loop().create_task(self.deliver(out))

    # --- draining

    def drain(self, agent_id: str, draining: bool) -> AgentRecord:
        """DRAINING: it keeps what it runs and takes nothing new; undrained, it is ACTIVE again
        (or stays DISCONNECTED or LOST until it reconnects). ``KeyError`` if unknown."""
        agent = self.state.agents[agent_id]
        if draining and agent.state is AgentState.ACTIVE:
            with self.state.change() as ch:
                self.applier.agent_state(ch, agent, AgentState.DRAINING, "drained by an operator")
        elif not draining and agent.state is AgentState.DRAINING:
            new = AgentState.ACTIVE if agent.connected else AgentState.DISCONNECTED
            with self.state.change() as ch:
                self.applier.agent_state(ch, agent, new, "undrained by an operator")
        return agent

    # --- loss detection

    def check_liveness(self, now: float, frozen_for: float = 0.0) -> None:
        """Apply the liveness verdicts (``policy.liveness``) at ``now``, the clock's monotonic
        time: hang up silent connections, declare agents LOST after ``lost_after`` of silence,
        excuse them ``frozen_for`` if the master itself was frozen that long.

        A store error for one agent is logged and the others are still checked; the next
        check tries again.
        """
        for verdict in self.verdicts(now, frozen_for):
            self._hang_up(verdict, self.judge(verdict))

    async def _check_soon(self, now: float, frozen_for: float = 0.0) -> None:
        """``check_liveness``, its store I/O off the loop."""
        for verdict in self.verdicts(now, frozen_for):
            self._hang_up(verdict, await self.state.write(self.judge, verdict))

    def verdicts(self, now: float, frozen_for: float = 0.0) -> list[Verdict]:
        """What liveness says of every agent at ``now`` (the clock's monotonic time)."""
        silences = [_silence(a) for a in self.state.agents.values()]
        return liveness(silences, now, self._limits(), frozen_for)

    def _limits(self) -> Limits:
        return Limits(self.disconnect_after, self.lost_after)

    def judge(self, verdict: Verdict) -> Outbox | None:
        """Apply one verdict if the agent's facts still call for it; None if they no longer
        do, or if the store refused it (logged: the next check retries). The facts are read
        again here, in the writer's turn: a registration or a heartbeat may have come since
        the verdict was reached, and an agent connected and beating must not be recorded
        DISCONNECTED or LOST (nothing would ever set it right)."""
        if not isinstance(verdict, Excuse) and not self._still_called_for(verdict):
            return None
        try:
            with self.state.change() as ch:
                return self.applier.apply(ch, [verdict], self.state.clock.now())
        except Fenced:
            raise  # another master leads: this one steps down (master.py)
        except Refusal as e:
            hostname = self.state.agents[verdict.agent_id].hostname
            log.warning("liveness check of agent %s failed: %s", hostname, e)
            return None
        except Exception:
            hostname = self.state.agents[verdict.agent_id].hostname
            log.exception("liveness check of agent %s failed", hostname)
            return None

    def _still_called_for(self, verdict: Verdict) -> bool:
        agent = self.state.agents.get(verdict.agent_id)
        if agent is None:
            return False
        now = self.state.clock.monotonic()
        return any(
            type(v) is type(verdict) for v in liveness([_silence(agent)], now, self._limits())
        )

    def _hang_up(self, verdict: Verdict, out: Outbox | None) -> None:
        for gone in out.hangups if out is not None else ():
            log.warning("agent %s %s: disconnecting", gone.hostname, verdict.reason)
            self.dispatch.hang_up(gone.id)

    async def forgive(self, seconds: float) -> None:
        """The master itself was frozen for ``seconds``: no agent could be heard meanwhile, so
        none is blamed for it (a check now, each agent's silence counted less the stall)."""
        await self._check_soon(self.state.clock.monotonic(), frozen_for=seconds)

    async def liveness_loop(self) -> None:
        """Check liveness every half heartbeat, forever."""
        period = self.heartbeat_interval / 2
        last = self.state.clock.monotonic()
        while True:
            await asyncio.sleep(period)
            now = self.state.clock.monotonic()
            late = now - last - period
            last = now
            if late > self.heartbeat_interval:
                log.warning("the master was frozen for %.1fs; agents are not blamed", late)
                await self.forgive(late)
            else:
                await self._check_soon(now)


def _silence(agent: AgentRecord) -> AgentSilence:
    return AgentSilence(agent.id, agent.hostname, agent.state, agent.connected, agent.silent_since)


def _batches(tasks: Sequence[LiveTask], most: int) -> Iterator[Sequence[LiveTask]]:
    """``tasks`` in order, cut where their launches' JSON would exceed ``most`` bytes."""
    start, size = 0, 0
    for i, task in enumerate(tasks):
        length = len(task.row.launch.json)
        if i > start and size + length > most:
            yield tasks[start:i]
            start, size = i, 0
        size += length
    if start < len(tasks):
        yield tasks[start:]
