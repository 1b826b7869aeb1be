"""The master's state: the store and the live records, kept in step.

Every change goes through ``ClusterState.change()``: the writes of one transaction, then (only
after the commit) the in-memory updates and the publication of its events. A store failure
therefore never leaves memory ahead of the store. What is written is the applier's business
(``applier.py``); this module holds what it writes to.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from corral.clock import Clock
from corral.master.events import EventBus
from corral.master.records import AgentRecord, LiveTask
from corral.master.view import TaskIndex
from corral.scheduler.model import Resources
from corral.spec.jobs import JobSpec
from corral.spec.services import HealthCheckStatus
from corral.spec.states import RunState, TaskState
from corral.store.store import Store, TaskCounts, Tx


class Change:
    """One transaction plus what to do in memory once it has committed."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.afterwards: list[Callable[[], None]] = []
        # Live tasks per run gained (retries) or lost (endings) in this change, not yet in memory.
        self.live_delta: Counter[tuple[str, int]] = Counter()
        self.finished_runs: set[tuple[str, int]] = set()
        self.running_runs: set[tuple[str, int]] = set()
        self.reschedule = False  # set when the change may let pending work be placed
        # The state each task changed here will have once committed (memory lags until then).
        self.states: dict[str, TaskState] = {}
        # Health check records reported here, per task (memory lags until the commit too).
        self.checks: dict[str, list[HealthCheckStatus]] = {}

    def state_of(self, task: LiveTask) -> TaskState:
        """The task's state as of this change."""
        return self.states.get(task.id, task.state)

    def after(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` after the commit."""
        self.afterwards.append(fn)


class ClusterState:
    """Live tasks, agents and unfinished runs, kept in step with the store."""

    def __init__(self, store: Store, bus: EventBus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.tasks: dict[str, LiveTask] = {}
        self.index: TaskIndex[LiveTask] = TaskIndex()  # ``tasks`` by job, agent, owner
        self.agents: dict[str, AgentRecord] = {}
        self.runs: dict[tuple[str, int], RunState] = {}
        self.live_per_run: Counter[tuple[str, int]] = Counter()
        # Every stored task (finished ones too) per (owner, state), as the store counts them.
        self.task_counts: TaskCounts = Counter()
        # What each owner's placed tasks hold, kept with the agents' ``used`` (fair share's
        # usage is counted from it on every pass, without a walk over every placed task).
        self.held: dict[str, Resources] = {}
        self.specs: dict[str, JobSpec] = {}
        self.wake = asyncio.Event()  # the scheduling loop: work may be placeable
        self.timers = asyncio.Event()  # the schedule loop: a job's next firing changed

    @contextmanager
    def change(self) -> Iterator[Change]:
        """A transaction; on commit, apply its memory updates, publish its events, wake the
        scheduler."""
        with self.store.tx() as tx:
            ch = Change(tx)
            yield ch
        self.task_counts.update(ch.tx.task_counts)
        for fn in ch.afterwards:
            fn()
        self.bus.publish(ch.tx.events)
        if ch.reschedule:
            self.wake.set()

    # --- loading

    def load(self) -> None:
        """Fill the live records from the store (at start, and when taking over)."""
        for row in self.store.jobs():
            self.specs[row["name"]] = JobSpec.stored(row["spec"])
        for row in self.store.unfinished_runs():
            self.runs[(row["job"], row["number"])] = RunState(row["state"])
        for row in self.store.active_tasks():
            self.add_live(LiveTask.from_row(row))
        self.task_counts = self.store.task_counts()

    def add_live(self, task: LiveTask) -> None:
        """Track a task that is not finished."""
        self.tasks[task.id] = task
        self.index.add(task)
        self.live_per_run[(task.job, task.run)] += 1
        agent = self.agents.get(task.agent_id or "")
        if agent is not None and task.state.active:
            agent.used = agent.used + task.resources
            self._hold(task.owner, task.resources)

    def drop_live(self, task: LiveTask) -> None:
        """Stop tracking a task that ended."""
        self.tasks.pop(task.id, None)
        self.index.remove(task)
        self.live_per_run[(task.job, task.run)] -= 1
        agent = self.agents.get(task.agent_id or "")
        if agent is not None and task.state.active:
            agent.used = agent.used - task.resources
            self._hold(task.owner, Resources() - task.resources)

    def forget_run(self, key: tuple[str, int]) -> None:
        """A run has its outcome: it is no longer open."""
        self.runs.pop(key, None)

    def occupy(self, task: LiveTask, agent: AgentRecord, devices: tuple[int, ...] = ()) -> None:
        """A PENDING task was placed: it now holds resources on the agent, and the GPU indices
        ``devices`` there."""
        task.state = TaskState.STAGING
        task.agent_id = agent.id
        task.row = task.row.placed(devices)
        self.index.moved(task)
        task.waiting = ""
        agent.used = agent.used + task.resources
        self._hold(task.owner, task.resources)

    def _hold(self, owner: str, change: Resources) -> None:
        held = self.held.get(owner, Resources()) + change
        if held == Resources():
            self.held.pop(owner, None)
        else:
            self.held[owner] = held

    def free_of(self, agent: AgentRecord) -> Resources:
        """What is left on an agent."""
        return agent.total - agent.used
