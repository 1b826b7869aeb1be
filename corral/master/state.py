"""The master's state: the store, the live records, and the one place where tasks change state.

Every change goes through ``ClusterState.change()``: the writes of one transaction, then (only
after the commit) the in-memory updates and the publication of its events. A store failure
therefore never leaves memory ahead of the store.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from corral.clock import Clock
from corral.master.events import EventBus
from corral.master.policy.effects import StartRetry
from corral.master.policy.retry import EndedTask, RetrySettings, decide_retry
from corral.master.policy.runs import RunTally, finish_run, run_running
from corral.master.records import AgentRecord, LiveTask
from corral.master.view import TaskIndex
from corral.master.work import retry_of
from corral.scheduler.model import Resources
from corral.spec.jobs import JobSpec
from corral.spec.services import HealthCheckStatus
from corral.spec.states import AgentState, RunState, TaskState
from corral.store.rows import TaskRow
from corral.store.store import Store, Tx


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
        self.specs: dict[str, JobSpec] = {}
        self.wake = asyncio.Event()  # the scheduling loop: work may be placeable
        self.timers = asyncio.Event()  # the schedule loop: a job's next firing changed
        # Called in the change that gives a run its outcome (job statistics, dependent jobs).
        self.run_finished: list[Callable[[Change, str, int, RunState, float], None]] = []
        # Called in the change that moves a task to a new state or health (services).
        self.task_changed: list[Callable[[Change, LiveTask, TaskState, str, float], None]] = []

    @contextmanager
    def change(self) -> Iterator[Change]:
        """A transaction; on commit, apply its memory updates, publish its events, wake the
        scheduler."""
        with self.store.tx() as tx:
            ch = Change(tx)
            yield ch
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

    def add_live(self, task: LiveTask) -> None:
        """Track a task that is not finished."""
        self.tasks[task.id] = task
        self.index.add(task)
        self.live_per_run[(task.job, task.run)] += 1
        agent = self.agents.get(task.agent_id or "")
        if agent is not None and task.state.active:
            agent.used = agent.used + task.resources

    def add_pending(self, ch: Change, rows: list[TaskRow], now: float, reason: str) -> None:
        """Store new PENDING tasks with their events; track them once committed."""
        ch.reschedule = True
        ch.tx.insert_tasks([r.values() for r in rows])
        ch.tx.add_events(
            [
                {
                    "time": now,
                    "type": "task_state",
                    "job": r.job,
                    "run": r.run,
                    "task_id": r.id,
                    "state": "PENDING",
                    "reason": reason,
                }
                for r in rows
            ]
        )
        tasks = [LiveTask.pending(r) for r in rows]

        def remember() -> None:
            for task in tasks:
                self.add_live(task)

        ch.after(remember)

    def _drop_live(self, task: LiveTask) -> None:
        self.tasks.pop(task.id, None)
        self.index.remove(task)
        self.live_per_run[(task.job, task.run)] -= 1
        agent = self.agents.get(task.agent_id or "")
        if agent is not None and task.state.active:
            agent.used = agent.used - task.resources

    def occupy(self, task: LiveTask, agent: AgentRecord, devices: tuple[int, ...] = ()) -> None:
        """A PENDING task was placed: it now holds resources on the agent, and the GPU indices
        ``devices`` there."""
        task.state = TaskState.STAGING
        task.agent_id = agent.id
        task.row = task.row.placed(devices)
        self.index.moved(task)
        task.waiting = ""
        agent.used = agent.used + task.resources

    # --- the one way a task changes state

    def transition(
        self,
        ch: Change,
        task: LiveTask,
        state: TaskState,
        *,
        reason: str = "",
        time: float | None = None,
        exit_code: int | None = None,
    ) -> None:
        """Move ``task`` to ``state``: its row and event, then the effects the policies decide
        on it (``run_running``; ``decide_retry``, or else ``finish_run``), all in ``ch``."""
        when = self.clock.now() if time is None else time
        self._record_state(ch, task, state, reason, when, exit_code)
        for hook in self.task_changed:
            hook(ch, task, state, reason, when)
        if state is TaskState.RUNNING:
            self._mark_run_running(ch, task, when)
        if not state.terminal:
            return
        ended = EndedTask(task.id, task.attempt, state, task.kill_requested, reason)
        retry = decide_retry(ended, self._retry_settings(task.job), when)
        if retry is not None:
            self._start_retry(ch, task, retry, when)
        else:
            self.maybe_finish_run(ch, task.job, task.run, when)

    def _record_state(
        self,
        ch: Change,
        task: LiveTask,
        state: TaskState,
        reason: str,
        when: float,
        exit_code: int | None,
    ) -> None:
        """The task's row and ``task_state`` event; its record once committed."""
        values: dict[str, Any] = {"state": state.value, "reason": reason}
        if state is TaskState.RUNNING:
            values["started_at"] = when
            ch.after(lambda: setattr(task, "started_at", when))
        if state.terminal:
            values.update(finished_at=when, exit_code=exit_code)
        ch.tx.update_task(task.id, **values)
        ch.states[task.id] = state
        ch.tx.add_event(
            time=when,
            type="task_state",
            job=task.job,
            run=task.run,
            task_id=task.id,
            agent_id=task.agent_id,
            state=state.value,
            reason=reason,
            data={} if exit_code is None else {"exit_code": exit_code},
        )
        if not state.terminal:
            ch.after(lambda: setattr(task, "state", state))
            return
        ch.live_delta[(task.job, task.run)] -= 1
        ch.reschedule = True  # resources were freed, or a retry waits
        ch.after(lambda: self._drop_live(task))

    def set_health(
        self, ch: Change, task: LiveTask, healthy: bool, reason: str, when: float
    ) -> None:
        """Record a task's new health verdict: row, event, and (after commit) memory."""
        ch.tx.update_task(task.id, healthy=healthy, health=reason)
        ch.tx.add_event(
            time=when,
            type="task_health",
            job=task.job,
            run=task.run,
            task_id=task.id,
            agent_id=task.agent_id,
            state=ch.state_of(task).value,
            reason=reason,
            data={"healthy": healthy},
        )
        ch.after(lambda: setattr(task, "healthy", healthy))
        for hook in self.task_changed:
            hook(ch, task, ch.state_of(task), reason, when)

    def set_checks(self, ch: Change, task: LiveTask, checks: list[HealthCheckStatus]) -> None:
        """Keep the records of a task's health checks; a check failing now with a failure the
        last records did not show is a ``task_check_failed`` event at the failure's time
        (``data``: the check's index and its failures in a row)."""
        before = ch.checks.get(task.id, task.checks or [])
        ch.checks[task.id] = checks
        for i, status in enumerate(checks):
            seen = before[i].last_failure if i < len(before) else None
            if status.alive is not False or status.last_failure in (None, seen):
                continue
            ch.tx.add_event(
                time=status.last_failure,
                type="task_check_failed",
                job=task.job,
                run=task.run,
                task_id=task.id,
                agent_id=task.agent_id,
                state=ch.state_of(task).value,
                reason=status.last_failure_cause or "",
                data={"check": i, "failures": status.consecutive_failures},
            )
        ch.after(lambda: setattr(task, "checks", list(checks)))

    def _run_state(self, ch: Change, key: tuple[str, int]) -> RunState | None:
        """A run's state as of this change (None: not an open run, or given its outcome here)."""
        if key in ch.finished_runs:
            return None
        return RunState.RUNNING if key in ch.running_runs else self.runs.get(key)

    def _mark_run_running(self, ch: Change, task: LiveTask, when: float) -> None:
        key = (task.job, task.run)
        effect = run_running(task.job, task.run, self._run_state(ch, key), task.id)
        if effect is None:
            return
        ch.running_runs.add(key)
        ch.tx.update_run(task.job, task.run, state=RunState.RUNNING.value)
        ch.tx.add_event(
            time=when,
            type="run_state",
            job=task.job,
            run=task.run,
            state=RunState.RUNNING.value,
            reason=effect.reason,
        )
        ch.after(lambda: self.runs.__setitem__(key, RunState.RUNNING))

    def _retry_settings(self, job: str) -> RetrySettings | None:
        """The job's retry settings (None: no job of that name, such as a service)."""
        spec = self.specs.get(job)
        if spec is None:
            return None
        return RetrySettings(spec.retries, spec.retry_backoff, spec.max_retry_delay)

    def _start_retry(self, ch: Change, task: LiveTask, retry: StartRetry, when: float) -> None:
        row = retry_of(task.row, when, retry.not_before)
        ch.tx.update_task(task.id, latest=False)  # the new attempt stands for the slot now
        self.add_pending(ch, [row], when, retry.reason)
        ch.live_delta[(task.job, task.run)] += 1

    def maybe_finish_run(self, ch: Change, job: str, run: int, when: float) -> None:
        """Give the run its outcome (``finish_run``) once none of its tasks is live."""
        key = (job, run)
        if self._run_state(ch, key) is None:
            return
        live = self.live_per_run[key] + ch.live_delta[key]
        # The ended tasks' states cost a query: asked for only once none is live.
        counts, killed = ch.tx.run_outcome(job, run) if live == 0 else ({}, 0)
        tally = RunTally(live, {TaskState(s): n for s, n in counts.items()}, killed)
        effect = finish_run(job, run, tally)
        if effect is None:
            return
        ch.finished_runs.add(key)
        outcome = effect.outcome
        ch.tx.update_run(job, run, state=outcome.value, finished_at=when)
        ch.tx.add_event(
            time=when,
            type="run_state",
            job=job,
            run=run,
            state=outcome.value,
            reason=effect.reason,
            data={"counts": counts},
        )
        ch.after(lambda: self._forget_run(key))
        for hook in self.run_finished:
            hook(ch, job, run, outcome, when)

    def _forget_run(self, key: tuple[str, int]) -> None:
        self.runs.pop(key, None)

    # --- agents

    def agent_event(self, ch: Change, agent: AgentRecord, state: AgentState, reason: str) -> None:
        """Record an agent's change of state."""
        ch.tx.upsert_agent(agent.id, state=state.value)
        ch.reschedule = True
        ch.tx.add_event(
            time=self.clock.now(),
            type="agent_state",
            agent_id=agent.id,
            state=state.value,
            reason=reason,
            data={"hostname": agent.hostname},
        )
        ch.after(lambda: setattr(agent, "state", state))

    def free_of(self, agent: AgentRecord) -> Resources:
        """What is left on an agent."""
        return agent.total - agent.used
