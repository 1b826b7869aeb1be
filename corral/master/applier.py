"""The applier: the one writer of what the master decides.

Decisions come from two places, both pure: the scheduling core's ``Plan`` (placements, stops,
preemptions, a status for each task left waiting) and the policies' effects (``policy/``:
retries, run outcomes, dependent runs, service starts and stops, deployment steps, service
failures, agents disconnected or lost). The applier turns either into the writes of one change
(``ClusterState.change()``: one transaction, fenced by the master's epoch; memory follows only
after the commit) and answers an ``Outbox``: what to tell agents once it has committed.

A task changing state is where most decisions start: ``transition`` writes the new state, then
asks the policies what follows (``run_running``, ``decide_retry`` or ``finish_run``, then
``children_to_start``; ``record_failure`` for a service's task) and applies their effects in the
same change.

Requests that set desired state (a job submitted, a service deployed, an agent registering) are
stored by their ops modules (``jobs.py``, ``services.py``, ``agents.py``); everything that
follows from them is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from corral.master.gangs import member_of
from corral.master.policy.dependencies import JobFacts, children_of, children_to_start
from corral.master.policy.effects import (
    CompleteStep,
    Effect,
    Excuse,
    FinishRun,
    HangUp,
    MarkDisconnected,
    MarkLost,
    MarkRunRunning,
    RecordFailure,
    RetryGang,
    SkipRun,
    StartRetry,
    StartRun,
    StartTasks,
    StopGang,
    StopTask,
)
from corral.master.policy.retry import (
    EndedTask,
    GangEnd,
    GangRank,
    RetrySettings,
    decide_gang,
    decide_retry,
)
from corral.master.policy.runs import RunTally, finish_run, run_running
from corral.master.policy.services import Backoff, ServiceTaskEnd, record_failure
from corral.master.records import AgentRecord, LiveTask
from corral.master.service_tasks import STOP, task_rows
from corral.master.state import Change, ClusterState
from corral.master.work import retry_of, run_tasks
from corral.scheduler.model import Plan, Status
from corral.spec.jobs import JobSpec
from corral.spec.protocol import AGENT_SHUTDOWN
from corral.spec.services import HealthCheckStatus
from corral.spec.states import AgentState, RunState, TaskState
from corral.store.rows import TaskRow
from corral.store.store import Tx

if TYPE_CHECKING:
    from corral.master.services import ServiceOps


@dataclass(frozen=True, slots=True)
class Kill:
    """Tell ``agent`` to stop ``task``, for ``reason`` (a preemption: to make room for ``by``)."""

    agent: AgentRecord
    task: LiveTask
    reason: str
    by: str | None = None
    finish: bool = False  # its work is done (a gang's waiting rank): it ends FINISHED


@dataclass(frozen=True, slots=True)
class Outbox:
    """What to tell agents after a change committed, in this order: launches, kills, then the
    agents whose connection to close."""

    launches: tuple[tuple[LiveTask, AgentRecord], ...] = ()
    kills: tuple[Kill, ...] = ()
    hangups: tuple[AgentRecord, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.launches or self.kills or self.hangups)

    def __add__(self, other: Outbox) -> Outbox:
        return Outbox(
            self.launches + other.launches,
            self.kills + other.kills,
            self.hangups + other.hangups,
        )


class Applier:
    """Writes plans and effects; the only writer of the state of tasks, runs, service
    instances, deployment steps and agents' liveness."""

    def __init__(self, state: ClusterState, services: ServiceOps) -> None:
        self.state = state
        self.services = services
        # Sends what effects decided within a task's transition ask of agents, once their
        # change has committed (the agents' side sets it; a gang stopped by one rank's end).
        self.deliver_later: Callable[[Outbox], None] | None = None

    # --- plans

    def plan(
        self, plan: Plan, placed: Sequence[tuple[LiveTask, AgentRecord]], now: float
    ) -> Outbox:
        """Store ``placed`` (the plan's placements still valid now), its stops and its
        preemptions in one transaction; answer what to send once it committed."""
        ending: list[tuple[str, str, Status, str | None]] = [
            (s.task_id, s.agent_id, s.status, None) for s in plan.stops
        ]
        ending += [(p.task_id, p.agent_id, p.status, p.by) for p in plan.preemptions]
        kills = self._still_running(ending)
        if not placed and not kills:
            return Outbox()
        devices = {p.task_id: p.devices for p in plan.placements}  # the GPU indices given
        with self.state.change() as ch:
            if placed:
                self._place(ch.tx, placed, devices, now)
            for kill in kills:
                # A preempted task's row names its preemptor: its history and accounting
                # tell it from a kill on request.
                ch.tx.update_task(kill.task.id, kill_requested=True, preempted_by=kill.by)
                ch.tx.add_event(
                    time=now,
                    type="task_preempted" if kill.by else "task_stopped",
                    job=kill.task.job,
                    run=kill.task.run,
                    task_id=kill.task.id,
                    agent_id=kill.agent.id,
                    reason=kill.reason,
                    data=self._preemptor(kill.by),
                )

            def remember() -> None:
                for t, a in placed:
                    self.state.occupy(t, a, devices.get(t.id, ()))
                for kill in kills:
                    kill.task.kill_requested = True
                    kill.task.preempted_by = kill.by

            ch.after(remember)
        return Outbox(tuple(placed), tuple(kills))

    def _preemptor(self, by: str | None) -> dict[str, Any]:
        """What a ``task_preempted`` event says of the task it made room for."""
        if by is None:
            return {}
        preemptor = self.state.tasks.get(by)
        return {"by": by, "by_owner": preemptor.owner if preemptor is not None else None}

    def _still_running(self, ending: list[tuple[str, str, Status, str | None]]) -> list[Kill]:
        """The stops and preemptions whose task still runs where the plan saw it."""
        kills = []
        for task_id, agent_id, status, by in ending:
            task = self.state.tasks.get(task_id)
            agent = self.state.agents.get(agent_id)
            if task is None or agent is None or task.agent_id != agent_id:
                continue
            if task.kill_requested or not task.state.active:
                continue
            kills.append(Kill(agent, task, status.reason, by))
        return kills

    @staticmethod
    def _place(
        tx: Tx,
        placed: Sequence[tuple[LiveTask, AgentRecord]],
        devices: dict[str, tuple[int, ...]],
        now: float,
    ) -> None:
        tx.place_tasks(
            [
                {
                    "task_id": t.id,
                    "job": t.job,
                    "run": t.run,
                    "owner": t.owner,
                    "agent_id": a.id,
                    "devices": devices.get(t.id, ()),
                }
                for t, a in placed
            ]
        )
        tx.add_events(
            [
                {
                    "time": now,
                    "type": "task_state",
                    "job": t.job,
                    "run": t.run,
                    "task_id": t.id,
                    "agent_id": a.id,
                    "state": "STAGING",
                    "reason": f"placed on {a.hostname}" + _gpus_given(devices.get(t.id, ())),
                }
                for t, a in placed
            ]
        )

    # --- effects

    def apply(self, ch: Change, effects: Iterable[Effect], now: float) -> Outbox:
        """Write ``effects`` in ``ch``, in order; answer what to send once it committed."""
        out = Outbox()
        for effect in effects:
            match effect:
                case StartRetry():
                    self._start_retry(ch, effect, now)
                case MarkRunRunning():
                    self._mark_run_running(ch, effect, now)
                case FinishRun():
                    self._finish_run(ch, effect, now)
                case StartRun():
                    self._start_child(ch, effect, now)
                case SkipRun():
                    ch.tx.add_event(
                        time=now, type="run_skipped", job=effect.job, reason=effect.reason
                    )
                case Excuse():
                    self._excuse(effect)
                case HangUp():
                    agent = self.state.agents[effect.agent_id]
                    self.agent_state(ch, agent, AgentState.DISCONNECTED, effect.reason)
                    out += Outbox(hangups=(agent,))
                case MarkDisconnected():
                    self._mark_disconnected(ch, self.state.agents[effect.agent_id], effect.reason)
                case MarkLost():
                    self._lose(ch, self.state.agents[effect.agent_id], effect.reason)
                case StartTasks():
                    self._start_tasks(ch, effect, now)
                case StopTask():
                    task = self.state.tasks[effect.task_id]
                    out += Outbox(kills=self.stop(ch, [task], effect.reason, now))
                case CompleteStep():
                    self._complete_step(ch, effect, now)
                case RecordFailure():
                    self._record_failure(ch, effect, now)
                case StopGang():
                    out += self._stop_gang(ch, effect, now)
                case RetryGang():
                    self._retry_gang(ch, effect, now)
        return out

    # --- tasks

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
                self.state.add_live(task)

        ch.after(remember)

    def transition(
        self,
        ch: Change,
        task: LiveTask,
        state: TaskState,
        *,
        reason: str = "",
        time: float | None = None,
        exit_code: int | None = None,
        ports: Sequence[int] = (),
    ) -> None:
        """Move ``task`` to ``state`` (the one way a task changes state): its row (with the
        host ``ports`` its agent reports, if any) and event, then what the policies decide on
        it (``run_running``; ``decide_retry``, or else ``finish_run``; ``record_failure`` for
        a service's task), all in ``ch``."""
        when = self.state.clock.now() if time is None else time
        if ch.state_of(task).terminal:
            return  # terminal states are final (a gang's rank stopped earlier in this change)
        self._record_state(ch, task, state, reason, when, exit_code, ports)
        if task.service:
            self._service_task_changed(ch, task, state, reason, when)
        if state is TaskState.RUNNING:
            key = (task.job, task.run)
            running = run_running(task.job, task.run, self._run_state(ch, key), task.id)
            self.apply(ch, [running] if running else [], when)
        if not state.terminal:
            return
        ended = EndedTask(
            task.id,
            task.attempt,
            state,
            task.kill_requested,
            reason,
            task.preempted_by,
            task.row.requeues,
        )
        if member_of(task) is not None:
            self._gang_rank_ended(ch, task, ended, when)
            return
        retry = decide_retry(ended, self._retry_settings(task.job), when)
        if retry is not None:
            self.apply(ch, [retry], when)
        else:
            self._maybe_finish_run(ch, task.job, task.run, when)

    def _record_state(
        self,
        ch: Change,
        task: LiveTask,
        state: TaskState,
        reason: str,
        when: float,
        exit_code: int | None,
        ports: Sequence[int],
    ) -> None:
        """The task's row and ``task_state`` event; its record once committed."""
        values: dict[str, Any] = {"state": state.value, "reason": reason}
        if ports:
            values["ports"] = list(ports)
            ch.after(lambda: setattr(task, "ports", tuple(ports)))
        if state is TaskState.RUNNING:
            values["started_at"] = when
            ch.after(lambda: setattr(task, "started_at", when))
        if state.terminal:
            values.update(finished_at=when, exit_code=exit_code)
        ch.tx.update_task(task.id, **values)
        ch.tx.task_moved(task.job, task.run, task.owner, ch.state_of(task).value, state.value)
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
            ch.after(lambda: self.state.move(task, state))
            return
        ch.live_delta[(task.job, task.run)] -= 1
        ch.reschedule = True  # resources were freed, or a retry waits
        ch.after(lambda: self.state.drop_live(task))

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
        ch.after(lambda: setattr(task, "health", reason))
        if task.service:
            self._service_task_changed(ch, task, ch.state_of(task), reason, when)

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

    def stop(
        self,
        ch: Change,
        victims: Iterable[LiveTask],
        reason: str,
        now: float,
        *,
        finish: bool = False,
    ) -> tuple[Kill, ...]:
        """Mark tasks as killed on request. A PENDING task, or one whose agent is not connected
        (it is told when it registers again), ends here; the others are answered as kills to
        send once ``ch`` committed. With ``finish`` their work is done: a task on an agent ends
        FINISHED (asked with ``Kill.finish``)."""
        kills: list[Kill] = []
        for task in victims:
            # Asked to stop for good: a preemption under way no longer requeues it.
            ch.tx.update_task(task.id, kill_requested=True, preempted_by=None)
            task.kill_requested, task.preempted_by = True, None
            agent = self.state.agents.get(task.agent_id or "")
            end = TaskState.FINISHED if finish else TaskState.KILLED
            if task.state is TaskState.PENDING:
                self.transition(ch, task, TaskState.KILLED, reason=reason, time=now)
            elif agent is None or not agent.connected:
                why = f"{reason} (agent not connected)"
                self.transition(ch, task, end, reason=why, time=now)
            else:
                kills.append(Kill(agent, task, reason, finish=finish))
        return tuple(kills)

    def start_now(self, ch: Change, waiting: Sequence[LiveTask]) -> None:
        """Let PENDING tasks waiting for a backoff be placed at once."""
        ch.reschedule = True
        for task in waiting:
            ch.tx.update_task(task.id, not_before=None)

        def forget_backoff() -> None:
            for task in waiting:
                task.not_before = None

        ch.after(forget_backoff)

    # --- runs

    def start_run(
        self, ch: Change, spec: JobSpec, owner: str, number: int, now: float, reason: str = ""
    ) -> None:
        """Start run ``number`` of a job within the change ``ch`` (``reason``: why, if not a
        request)."""
        rows = run_tasks(spec, owner, number, now)
        ch.tx.insert_run(
            job=spec.name,
            number=number,
            state=RunState.PENDING.value,
            total=len(rows),
            created_at=now,
        )
        ch.tx.update_job(spec.name, runs=number)
        ch.tx.add_event(
            time=now, type="run_state", job=spec.name, run=number, state="PENDING", reason=reason
        )
        self.add_pending(ch, rows, now, "submitted")
        ch.after(lambda: self.state.runs.__setitem__((spec.name, number), RunState.PENDING))

    def _run_state(self, ch: Change, key: tuple[str, int]) -> RunState | None:
        """A run's state as of this change (None: not an open run, or given its outcome here)."""
        if key in ch.finished_runs:
            return None
        return RunState.RUNNING if key in ch.running_runs else self.state.runs.get(key)

    def _mark_run_running(self, ch: Change, effect: MarkRunRunning, now: float) -> None:
        key = (effect.job, effect.run)
        ch.running_runs.add(key)
        ch.tx.update_run(effect.job, effect.run, state=RunState.RUNNING.value)
        ch.tx.add_event(
            time=now,
            type="run_state",
            job=effect.job,
            run=effect.run,
            state=RunState.RUNNING.value,
            reason=effect.reason,
        )
        ch.after(lambda: self.state.runs.__setitem__(key, RunState.RUNNING))

    def _retry_settings(self, job: str) -> RetrySettings | None:
        """The job's retry settings (None: no job of that name, such as a service)."""
        spec = self.state.specs.get(job)
        if spec is None:
            return None
        return RetrySettings(spec.retries, spec.retry_backoff, spec.max_retry_delay)

    def _start_retry(self, ch: Change, retry: StartRetry, now: float) -> None:
        task = self.state.tasks[retry.task_id]
        row = retry_of(task.row, now, retry.not_before, retry.requeue)
        # The new attempt stands for the slot now.
        ch.tx.superseded(task.id, task.job, task.run, ch.state_of(task).value)
        self.add_pending(ch, [row], now, retry.reason)
        ch.live_delta[(task.job, task.run)] += 1

    # --- gangs

    def _gang_rank_ended(self, ch: Change, task: LiveTask, ended: EndedTask, now: float) -> None:
        """A rank of a gang ended: ``decide_gang`` in place of ``decide_retry`` (the others
        stopped or finished, the whole gang retried), then the run's outcome once none is
        live. Kills it asks for are sent once ``ch`` has committed."""
        member = member_of(task)
        assert member is not None
        live = [
            t
            for t in self.state.index.of_job(task.job)
            if t.run == task.run and t is not task and not ch.state_of(t).terminal
        ]
        others = tuple(
            GangRank(t.id, t.slot, t.kill_requested) for t in live if t.attempt == task.attempt
        )
        superseded = any(t.attempt > task.attempt for t in live)
        end = GangEnd(task.job, task.run, member.rank, member.every_rank, others, superseded)
        effects = decide_gang(ended, end, self._retry_settings(task.job), now)
        out = self.apply(ch, effects, now)
        if out and self.deliver_later is not None:
            deliver = self.deliver_later
            ch.after(lambda: deliver(out))
        self._maybe_finish_run(ch, task.job, task.run, now)

    def _stop_gang(self, ch: Change, effect: StopGang, now: float) -> Outbox:
        """Stop the gang's other live ranks (killed, or finished: their work is done)."""
        ranks = [self.state.tasks[i] for i in effect.task_ids if i in self.state.tasks]
        ranks = [t for t in ranks if not ch.state_of(t).terminal and not t.kill_requested]
        return Outbox(kills=self.stop(ch, ranks, effect.reason, now, finish=effect.finish))

    def _retry_gang(self, ch: Change, effect: RetryGang, now: float) -> None:
        """Every rank of the gang's attempt gets its next attempt, waiting for the backoff."""
        attempt = ch.tx.attempt_tasks(effect.job, effect.run, effect.attempt - 1)
        rows = [retry_of(TaskRow.stored(dict(row)), now, effect.not_before) for row in attempt]
        for row in attempt:
            ch.tx.update_task(row["id"], latest=False)  # the new attempt stands for the gang
        self.add_pending(ch, rows, now, effect.reason)
        ch.live_delta[(effect.job, effect.run)] += len(rows)

    def _maybe_finish_run(self, ch: Change, job: str, run: int, now: float) -> None:
        """Give the run its outcome (``finish_run``) once none of its tasks is live."""
        key = (job, run)
        if self._run_state(ch, key) is None:
            return
        live = self.state.live_per_run[key] + ch.live_delta[key]
        # The ended tasks' states cost a query: asked for only once none is live.
        counts, killed = ch.tx.run_outcome(job, run) if live == 0 else ({}, 0)
        spec = self.state.specs.get(job)
        gang = spec is not None and spec.nodes is not None
        failed = ch.tx.unasked_failures(job, run) if gang and live == 0 and killed else 0
        ended = {TaskState(s): n for s, n in counts.items()}
        tally = RunTally(live, ended, killed, gang=gang, failed=failed)
        effect = finish_run(job, run, tally)
        self.apply(ch, [effect] if effect else [], now)

    def _finish_run(self, ch: Change, effect: FinishRun, now: float) -> None:
        """The run's outcome and the job's statistics; then the dependent runs
        ``children_to_start`` names."""
        job, run, outcome = effect.job, effect.run, effect.outcome
        key = (job, run)
        ch.finished_runs.add(key)
        ch.tx.update_run(job, run, state=outcome.value, finished_at=now)
        ch.tx.add_event(
            time=now,
            type="run_state",
            job=job,
            run=run,
            state=outcome.value,
            reason=effect.reason,
            data={"counts": dict(effect.counts)},
        )
        ch.after(lambda: self.state.forget_run(key))
        row = ch.tx.job(job)
        if row is None:
            return
        if outcome is RunState.SUCCEEDED:
            ch.tx.update_job(job, success_count=row["success_count"] + 1, last_success=now)
        elif outcome is RunState.FAILED:
            ch.tx.update_job(job, error_count=row["error_count"] + 1, last_error=now)
        if outcome is not RunState.SUCCEEDED:
            return  # no child starts (children_to_start): spare the reads of their facts
        specs = self.state.specs
        children = children_of(job, {n: s.parents for n, s in specs.items()})
        family = {p for c in children for p in specs[c].parents} | set(children)
        facts = {name: f for name in sorted(family) if (f := self._facts(ch, name)) is not None}
        self.apply(ch, children_to_start(job, outcome, facts), now)

    def _facts(self, ch: Change, name: str) -> JobFacts | None:
        """What the dependency policy needs of a job, as this change sees it (None: deleted)."""
        spec = self.state.specs.get(name)
        row = ch.tx.job(name)
        if spec is None or row is None:
            return None
        return JobFacts(
            parents=tuple(spec.parents),
            disabled=spec.disabled,
            concurrent=spec.concurrent,
            running=any(j == name for j, _ in self.state.runs),
            created_at=row["created_at"],
            last_run_start=ch.tx.last_run_start(name),
            last_success=row["last_success"],
        )

    def _start_child(self, ch: Change, effect: StartRun, now: float) -> None:
        child = ch.tx.job(effect.job)
        if child is not None:  # always: its facts came from this transaction
            spec = self.state.specs[effect.job]
            self.start_run(ch, spec, child["owner"], child["runs"] + 1, now, effect.reason)

    # --- agents

    def agent_state(self, ch: Change, agent: AgentRecord, state: AgentState, reason: str) -> None:
        """Record an agent's change of state."""
        ch.tx.upsert_agent(agent.id, state=state.value)
        ch.reschedule = True
        ch.tx.add_event(
            time=self.state.clock.now(),
            type="agent_state",
            agent_id=agent.id,
            state=state.value,
            reason=reason,
            data={"hostname": agent.hostname},
        )
        ch.after(lambda: setattr(agent, "state", state))

    def _excuse(self, effect: Excuse) -> None:
        # Memory only: the silence it shortens was never stored.
        self.state.agents[effect.agent_id].silent_since += effect.seconds

    def _mark_disconnected(self, ch: Change, agent: AgentRecord, reason: str) -> None:
        if agent.state in (AgentState.ACTIVE, AgentState.DRAINING):
            self.agent_state(ch, agent, AgentState.DISCONNECTED, reason)

    def _lose(self, ch: Change, agent: AgentRecord, reason: str) -> None:
        """The agent is LOST, and every task it had with it."""
        self.agent_state(ch, agent, AgentState.LOST, reason)
        for task in list(self.state.index.on_agent(agent.id)):
            self.transition(ch, task, TaskState.LOST, reason=reason)

    # --- services

    def _service_task_changed(
        self, ch: Change, task: LiveTask, state: TaskState, reason: str, when: float
    ) -> None:
        """A task of a service changed: wake the service loop; an unasked-for end is
        recorded as the last failure and, as ``record_failure`` decides, counts towards the
        backoff."""
        ch.after(self.services.wake.set)
        rec = self.services.services.get(task.job)
        if rec is None:
            return
        end = ServiceTaskEnd(
            service=task.job,
            task_id=task.id,
            state=state,
            reason=reason,
            kill_requested=task.kill_requested,
            agent_shutdown=reason.startswith(AGENT_SHUTDOWN),
            started_at=task.started_at,
        )
        b = rec.spec.backoff
        backoff = Backoff(b.seconds, b.factor, b.max_launch_delay)
        found = record_failure(end, rec.failures, backoff, when)
        self.apply(ch, [found] if found else [], when)

    def _record_failure(self, ch: Change, effect: RecordFailure, now: float) -> None:
        rec = self.services.services[effect.service]
        task = self.state.tasks.get(effect.task_id)
        agent_id = task.agent_id if task is not None else None
        agent = self.state.agents.get(agent_id or "")
        failure: dict[str, Any] = {
            "time": now,
            "task_id": effect.task_id,
            "state": effect.ended.value,
            "reason": effect.cause,
            # Where it failed, as the agent was named then (Marathon's host and slaveId).
            "agent_id": agent_id,
            "host": agent.hostname if agent is not None else "",
        }
        values: dict[str, Any] = {"last_failure": failure}
        if effect.failures is not None:
            values.update(failures=effect.failures, delay_until=effect.delay_until)
        ch.tx.update_service(rec.id, **values)

        def remember() -> None:
            rec.failures = values.get("failures", rec.failures)
            rec.delay_until = values.get("delay_until", rec.delay_until)

        ch.after(remember)

    def _start_tasks(self, ch: Change, effect: StartTasks, now: float) -> None:
        rec = self.services.services[effect.service]
        rows = task_rows(rec, effect.count, now, effect.not_before)
        ch.tx.update_service(effect.service, next_slot=rec.next_slot + effect.count)
        rec.next_slot += effect.count  # memory first: the rows above took these slots
        self.add_pending(ch, rows, now, effect.reason)

    def _complete_step(self, ch: Change, effect: CompleteStep, now: float) -> None:
        dep = self.services.deployments.get(effect.deployment)
        if dep is None:  # cancelled while the kills went out
            return
        nxt = dep.current_step + 1
        if dep.steps:
            ch.tx.add_event(
                time=now,
                type="deployment_step",
                job=dep.job,
                reason=effect.reason,
                data={"id": dep.id, "step": nxt, "actions": dep.steps[dep.current_step]},
            )
        for a in dep.steps[dep.current_step] if dep.steps else []:
            if a["action"] == STOP and a["app"] not in self.services.services:
                ch.tx.delete_service(a["app"])  # the rows of its tasks, all ended now
        ch.tx.update_deployment(dep.id, current_step=nxt)
        if nxt >= len(dep.steps):
            self.services.finish(ch, dep, "SUCCEEDED", "")
        else:
            ch.after(lambda: setattr(dep, "current_step", nxt))
            ch.after(self.services.wake.set)


def _gpus_given(devices: tuple[int, ...]) -> str:
    """`` with GPU 0,1`` for the reason of a placement given GPUs; "" for one given none."""
    return f" with GPU {','.join(map(str, devices))}" if devices else ""
