"""The scheduling pass: snapshot the live state, ask the pure core for a plan, have the applier
write it ahead, then send what it says to the agents."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace

from corral.master.agents import AgentOps
from corral.master.applier import Applier, Outbox
from corral.master.fairshare import FairShare, write_usage
from corral.master.gangs import gang_key
from corral.master.records import AgentRecord, LiveTask
from corral.master.state import ClusterState
from corral.master.waiting import waiting_since
from corral.scheduler import plan
from corral.scheduler.model import (
    AgentSnapshot,
    PlacedTask,
    Placement,
    Plan,
    Snapshot,
)
from corral.scheduler.window import Planner, windowed_plan
from corral.spec.states import AgentState, TaskState
from corral.store.store import Refusal
from corral.waits import wait_event

log = logging.getLogger(__name__)
RETRY = 1.0  # seconds before a pass the store refused is tried again


def _never(service: str) -> bool:
    return False


def snapshot_of(state: ClusterState, preemptible: Callable[[str], bool] = _never) -> Snapshot:
    """The read-only view the core plans on. Placed tasks are read from the index by agent, so
    building it costs what is placed, not what is pending. They are listed by agent: the core
    reads them as a set (sums per owner, victims sorted by their own key). A batch task may be
    preempted, a service's when ``preemptible(its service id)`` says so, a gang's rank never."""
    placed: list[PlacedTask] = []
    ports: dict[str, frozenset[int]] = {}
    devices: dict[str, frozenset[int]] = {}
    for agent_id in state.index.agents():
        tasks = [t for t in state.index.on_agent(agent_id) if t.state.active]
        placed += [
            PlacedTask(
                t.id,
                t.job,
                agent_id,
                t.owner,
                t.resources,
                t.priority,
                t.devices,
                preemptible=preemptible(t.job) if t.service else t.gang is None,
                stopping=t.kill_requested,
            )
            for t in tasks
        ]
        ports[agent_id] = frozenset(p for t in tasks for p in t.host_ports)
        devices[agent_id] = frozenset(d for t in tasks for d in t.devices)
    agents = tuple(
        AgentSnapshot(
            id=a.id,
            hostname=a.hostname,
            total=a.total,
            used=a.used,
            attributes=a.attributes,
            drivers=a.drivers,
            schedulable=a.connected and a.state is AgentState.ACTIVE,
            volume_roots=a.volume_roots,
            privileged=a.privileged,
            ports_used=ports.get(a.id, frozenset()),
            devices=tuple(g.index for g in a.gpus),
            devices_used=devices.get(a.id, frozenset()),
        )
        for a in state.agents.values()
    )
    return Snapshot(agents=agents, placed=tuple(placed))


class SchedulingLoop:
    """Runs a pass whenever something changed (``state.wake``) or a retry's backoff ends."""

    def __init__(
        self,
        state: ClusterState,
        agents: AgentOps,
        applier: Applier,
        tick: float = 30.0,
        spacing: float = 0.005,
        planner: Planner = plan,
        fair_share: FairShare | None = None,
        preempt_after: float | None = None,
        preemptible: Callable[[str], bool] = _never,
    ) -> None:
        self.state = state
        self.fair_share = fair_share
        # Preemption (off: None): a task of a user below their share that waited this many
        # seconds may evict tasks of users over theirs; ``preemptible`` says which services'
        # tasks may be evicted.
        self.preempt_after = preempt_after
        self.preemptible = preemptible
        # The clock's time the last pass planned at: a task that reached the threshold after
        # it has not been weighed for preemption yet (a timer may fire a moment early).
        self._planned_at = -math.inf
        self.agents = agents
        self.applier = applier
        self.planner = planner
        # Whatever may let waiting work in wakes the loop (work added, a task ending, an agent
        # joining or changing state, a backoff ending): the tick is only a safety net.
        self.tick = tick
        # Passes are at least this far apart, so a burst of status updates makes one pass,
        # not one each; an idle cluster plans at once. A long pass spaces the next one as
        # far: planning takes at most about half of the master's time, whatever the churn.
        self.spacing = spacing

    def due(self, now: float) -> float | None:
        """When the next pass is due: the next backoff's end, or (with preemption) the next
        waiting task reaching the threshold; at once (``now`` or before) if a backoff ended
        or a task reached the threshold after the last pass planned. Files the tasks whose
        backoff is over with the ready ones."""
        released, next_due = self.state.waiting.release(now)
        if released:  # ready since the last pass (which a timer may start a moment early)
            next_due = now
        after = self.preempt_after
        if after is None:
            return next_due
        # Past the threshold a task may preempt: plan then, not at the next tick. A plan that
        # looks for preemptions weighs every waiting task anyway.
        for t in self.state.waiting.tasks.values():
            if t.kill_requested or (t.not_before is not None and t.not_before > now):
                continue
            late = waiting_since(t) + after
            if late > self._planned_at:
                next_due = late if next_due is None else min(next_due, late)
        return next_due

    async def run_once(self) -> Plan | None:
        """One pass. Answers the plan, or None if nothing was pending."""
        now = self.state.clock.now()
        self.due(now)
        self._planned_at = now
        taken = None
        if self.state.waiting.any_ready():
            snapshot = snapshot_of(self.state, self.preemptible)
            if self.fair_share is not None:
                snapshot = self.fair_share.fill(snapshot, now, self.state.held)
            if self.preempt_after is not None:
                snapshot = replace(
                    snapshot, preemption=True, preempt_after=self.preempt_after, now=now
                )
            taken = self.state.waiting.take(snapshot, now)
        if taken is None or not taken.cohorts:
            if self.fair_share is not None:  # usage counts what ran while nothing waited
                self.fair_share.track(now, self.state.held)
                await self._save_usage(now)
            return None
        # The pure core plans in a worker thread: a pass that looks for preemptions weighs
        # every waiting task, in which the loop must go on answering /health, agents and the API.
        result = await asyncio.to_thread(windowed_plan, self.planner, snapshot, taken.cohorts)
        self.state.waiting.note(result, taken)
        out, all_placed = await self.state.write(self._commit, result, snapshot, now)
        if not all_placed:
            self.state.wake.set()  # what changed meanwhile is planned again at once
        if self.fair_share is not None:  # what was just placed holds from now on
            self.fair_share.track(now, self.state.held)
        await self.agents.deliver(out)
        await self._save_usage(now)
        return result

    async def _save_usage(self, now: float) -> None:
        """Write the decayed usage when due: taken on the loop, written in a worker thread."""
        if self.fair_share is None:
            return
        found = self.fair_share.due_rows(now)
        if found is not None:
            await asyncio.to_thread(write_usage, self.fair_share.store, found)

    def _commit(self, result: Plan, snapshot: Snapshot, now: float) -> tuple[Outbox, bool]:
        """Store the plan's placements the state still allows (checked in the writer's turn,
        so nothing changes between the check and the write); answers what to send, and
        whether every placement was still allowed."""
        placed = self._still_placeable(result.placements, snapshot)
        return self.applier.plan(result, placed, now), len(placed) == len(result.placements)

    def _still_placeable(
        self, placements: Sequence[Placement], planned_on: Snapshot
    ) -> list[tuple[LiveTask, AgentRecord]]:
        """The placements the state still allows after planning: the task is still pending
        and wanted, its agent still takes work and nothing was added to that agent meanwhile
        (freed resources only make room). A gang goes whole or not at all: one rank that can
        no longer go holds back the others."""
        before = {a.id: a for a in planned_on.agents}
        placed = []
        broken: set[str | None] = set()  # gangs with a rank left behind
        for p in placements:
            task = self.state.tasks.get(p.task_id)
            agent = self.state.agents.get(p.agent_id)
            if task is None or task.state is not TaskState.PENDING or task.kill_requested:
                ok = False
            elif agent is None or not (agent.connected and agent.state is AgentState.ACTIVE):
                ok = False
            else:
                ok = agent.used.fits_in(before[agent.id].used)
            if ok and task is not None and agent is not None:
                placed.append((task, agent))
            elif task is not None:
                broken.add(gang_key(task))
        broken.discard(None)
        return [(t, a) for t, a in placed if gang_key(t) not in broken] if broken else placed

    async def run_forever(self) -> None:
        """Plan on every wake-up, and at least every ``tick`` seconds."""
        loop = asyncio.get_running_loop()
        last, gap = -math.inf, self.spacing
        while True:
            next_due = self.due(self.state.clock.now())
            timeout = self.tick
            if next_due is not None:
                timeout = max(0.0, min(timeout, next_due - self.state.clock.now()))
            await wait_event(self.state.wake, timeout)
            if loop.time() - last < gap:
                await asyncio.sleep(gap - (loop.time() - last))
            self.state.wake.clear()
            started = loop.time()
            try:
                await self.run_once()
            except Refusal as e:  # planned again a little later, when the store may be back
                log.warning("scheduling pass failed: %s", e)
                loop.call_later(RETRY, self.state.wake.set)
            except Exception:  # a bad pass must not stop scheduling for good
                log.exception("scheduling pass failed")
            last = loop.time()
            gap = max(self.spacing, last - started)
