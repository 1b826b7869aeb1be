"""The scheduling pass: snapshot the live state, ask the pure core for a plan, have the applier
write it ahead, then send what it says to the agents."""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace

from corral.master.agents import AgentOps
from corral.master.applier import Applier, Outbox
from corral.master.fairshare import FairShare, write_usage
from corral.master.gangs import gang_key, request_fields
from corral.master.records import AgentRecord, LiveTask
from corral.master.state import ClusterState
from corral.scheduler import plan
from corral.scheduler.cohorts import CohortKey, cohort_key
from corral.scheduler.model import (
    AgentSnapshot,
    PlacedTask,
    Placement,
    Plan,
    Snapshot,
    TaskRequest,
)
from corral.scheduler.window import Planner, windowed_plan
from corral.spec.states import AgentState, TaskState
from corral.store.store import Refusal

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


def request_of(task: LiveTask) -> TaskRequest:
    """What the core needs to know of a pending task. Made once while it waits: all of it
    comes from its row, which does not change while it is pending, but for when it began to
    wait (its backoff may be lifted)."""
    since = waiting_since(task)
    made = task.request
    if made is not None and made.waiting_since == since:
        return made
    gang, gang_node, gang_size = request_fields(task)
    task.request = request = TaskRequest(
        id=task.id,
        group=task.job,
        resources=task.resources,
        driver=task.driver,
        constraints=task.constraints,
        strategy=task.strategy,
        owner=task.owner,
        priority=task.priority,
        order=task.order,
        host_paths=task.host_paths,
        privileged=task.privileged,
        host_ports=task.host_ports,
        gang=gang,
        gang_node=gang_node,
        gang_size=gang_size,
        waiting_since=since,
    )
    task.cohort = cohort_of(request)
    return request


class _Cohort:
    """One cohort's identity (``cohort_of``); weakly interned, so it lives as long as some
    waiting task refers to it."""

    __slots__ = ("__weakref__",)


_cohorts: weakref.WeakValueDictionary[CohortKey, _Cohort] = weakref.WeakValueDictionary()


def cohort_of(request: TaskRequest) -> _Cohort:
    """The object that stands for ``request``'s cohort: the same for every task of it, so that
    a pass groups thousands of waiting tasks without hashing their keys again."""
    key = cohort_key(request)
    found = _cohorts.get(key)
    if found is None:
        found = _cohorts[key] = _Cohort()
    return found


def waiting_since(task: LiveTask) -> float:
    """When a pending task began to wait for a place: when it was made, or when its backoff
    ended."""
    return max(task.created_at, task.not_before or 0.0)


def _plan_ready(planner: Planner, snapshot: Snapshot, ready: Sequence[LiveTask]) -> Plan:
    """The plan for ``ready``; runs in a worker thread. It reads of each pending task only what
    is fixed while it is pending (resources, constraints, owner...), so the loop may go on
    changing other fields meanwhile. The planner sees each cohort cut to the free room (see
    ``corral.scheduler.window``): a pass costs what can be placed, not what waits."""
    cohorts: dict[object, list[TaskRequest]] = {}
    for task in ready:
        request = request_of(task)
        cohorts.setdefault(task.cohort, []).append(request)
    return windowed_plan(planner, snapshot, cohorts.values())


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
        self.agents = agents
        self.applier = applier
        self.planner = planner
        # Whatever may let waiting work in wakes the loop (work added, a task ending, an agent
        # joining or changing state, a backoff ending): the tick is only a safety net, and a
        # rare one, since a pass over 100,000 waiting tasks costs a third of a second of CPU.
        self.tick = tick
        # Passes are at least this far apart, so a burst of status updates makes one pass,
        # not one each; an idle cluster plans at once. A long pass spaces the next one as
        # far: planning takes at most about half of the master's time, whatever the churn.
        self.spacing = spacing

    def due(self, now: float) -> tuple[list[LiveTask], float | None]:
        """Pending tasks whose backoff is over, and when the next pass is due: the next
        backoff's end, or (with preemption) the next waiting task reaching the threshold."""
        ready: list[LiveTask] = []
        next_due: float | None = None
        after = self.preempt_after
        for t in self.state.pending.values():
            if t.kill_requested:
                continue
            if t.not_before is not None and t.not_before > now:
                when: float | None = t.not_before
            else:
                ready.append(t)
                # Past the threshold it may preempt: plan then, not at the next tick.
                late = None if after is None else waiting_since(t) + after
                when = late if late is not None and late > now else None
            if when is not None:
                next_due = when if next_due is None else min(next_due, when)
        return ready, next_due

    async def run_once(self) -> Plan | None:
        """One pass. Answers the plan, or None if nothing was pending."""
        now = self.state.clock.now()
        ready, _ = self.due(now)
        if not ready:
            if self.fair_share is not None:  # usage counts what ran while nothing waited
                self.fair_share.track(now, self.state.held)
                await self._save_usage(now)
            return None
        snapshot = snapshot_of(self.state, self.preemptible)
        if self.fair_share is not None:
            snapshot = self.fair_share.fill(snapshot, now, self.state.held)
        if self.preempt_after is not None:
            snapshot = replace(snapshot, preemption=True, preempt_after=self.preempt_after, now=now)
        # The pure core plans in a worker thread: a pass over 100,000 pending tasks takes
        # seconds, in which the loop must go on answering /health, agents and the API.
        result = await asyncio.to_thread(_plan_ready, self.planner, snapshot, ready)
        self.applier.note_waiting(result)
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
            _, next_due = self.due(self.state.clock.now())
            timeout = self.tick
            if next_due is not None:
                timeout = max(0.0, min(timeout, next_due - self.state.clock.now()))
            try:
                await asyncio.wait_for(self.state.wake.wait(), timeout)
            except TimeoutError:
                pass
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
