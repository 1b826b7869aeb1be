"""A master-level harness for the pure policies: no SQLite, no sockets, no clock.

A test arranges jobs, runs, agents and services in memory, feeds one event (a task ended, a
liveness check, a service pass) and asserts on ``h.effects``, the effects the policies asked
for, as Nomad's ``Harness`` records plans. The harness applies the effects to its own records
the way the master does, so that a chain (a failure → no retry left → the run fails → no child
starts) or a later event sees their result.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from corral.master.policy.dependencies import JobFacts, children_to_start
from corral.master.policy.effects import (
    Effect,
    Excuse,
    FinishRun,
    HangUp,
    MarkDisconnected,
    MarkLost,
    StartRetry,
    StartRun,
    StopTask,
)
from corral.master.policy.liveness import AgentSilence, Limits, liveness
from corral.master.policy.retry import EndedTask, RetrySettings, decide_retry
from corral.master.policy.runs import RunTally, finish_run
from corral.master.policy.services import (
    Backoff,
    DeploymentFacts,
    ServiceFacts,
    ServiceTaskEnd,
    decide_services,
    record_failure,
    steps_done,
)
from corral.scheduler.reconcile import Instance
from corral.spec.states import AgentState, RunState, TaskState


@dataclass
class RunRecord:
    """A run's tasks as the harness counts them (newest attempts only)."""

    live: int
    ended: Counter[TaskState] = field(default_factory=Counter)
    killed: int = 0


class Harness:
    """An in-memory cluster that records the effects the policies decide."""

    def __init__(self, now: float = 1_000.0, limits: Limits | None = None) -> None:
        self.now = now
        self.limits = limits or Limits(disconnect_after=3.0, lost_after=8.0)
        self.effects: list[Effect] = []
        self.jobs: dict[str, JobFacts] = {}
        self.retries: dict[str, RetrySettings] = {}
        self.runs: dict[tuple[str, int], RunRecord] = {}
        self.agents: dict[str, AgentSilence] = {}
        self.services: dict[str, ServiceFacts] = {}
        self.instances: dict[str, list[Instance]] = {}
        self.deployments: list[DeploymentFacts] = []
        self.stopping: defaultdict[str, list[Instance]] = defaultdict(list)  # asked to stop

    # --- jobs

    def job(
        self,
        name: str,
        *parents: str,
        retries: int = 0,
        backoff: float = 1.0,
        concurrent: bool = False,
        disabled: bool = False,
    ) -> None:
        """Define a job now, with the parents it waits for."""
        self.jobs[name] = JobFacts(
            parents=parents, disabled=disabled, concurrent=concurrent, created_at=self.now
        )
        self.retries[name] = RetrySettings(retries, backoff, max_delay=300.0)

    def start_run(self, job: str, run: int = 1, tasks: int = 1) -> None:
        """A run of ``job`` with ``tasks`` live tasks starts now."""
        self.runs[(job, run)] = RunRecord(live=tasks)
        self.jobs[job] = replace(self.jobs[job], running=True, last_run_start=self.now)

    def task_ended(
        self,
        job: str,
        state: TaskState,
        *,
        run: int = 1,
        attempt: int = 0,
        kill_requested: bool = False,
        reason: str = "",
    ) -> list[Effect]:
        """A task of the run ends, as ``ClusterState.transition`` evaluates it: a retry, or else
        the run's outcome once none of its tasks is live, then the children it starts."""
        before = len(self.effects)
        task = EndedTask(f"{job}.{run}.0.{attempt}", attempt, state, kill_requested, reason)
        retry = decide_retry(task, self.retries.get(job), self.now)
        if retry is not None:
            self.effects.append(retry)
            return self.effects[before:]
        rec = self.runs[(job, run)]
        rec.live -= 1
        rec.ended[state] += 1
        rec.killed += kill_requested
        finished = finish_run(job, run, RunTally(rec.live, rec.ended, rec.killed))
        if finished is not None:
            self.effects.append(finished)
            self._run_finished(finished)
        return self.effects[before:]

    def _run_finished(self, effect: FinishRun) -> None:
        facts = replace(self.jobs[effect.job], running=False)
        if effect.outcome is RunState.SUCCEEDED:
            facts = replace(facts, last_success=self.now)
        self.jobs[effect.job] = facts
        for child in children_to_start(effect.job, effect.outcome, self.jobs):
            self.effects.append(child)
            if isinstance(child, StartRun):
                self.start_run(child.job, run=self._next_run(child.job))

    def _next_run(self, job: str) -> int:
        return 1 + max((r for j, r in self.runs if j == job), default=0)

    def retried(self) -> list[StartRetry]:
        """The retries recorded so far."""
        return [e for e in self.effects if isinstance(e, StartRetry)]

    # --- agents

    def agent(
        self, name: str, state: AgentState = AgentState.ACTIVE, *, silent_for: float = 0.0
    ) -> None:
        """An agent last heard ``silent_for`` seconds ago; connected while ACTIVE or DRAINING."""
        connected = state in (AgentState.ACTIVE, AgentState.DRAINING)
        self.agents[name] = AgentSilence(name, name, state, connected, self.now - silent_for)

    def check_liveness(self, frozen_for: float = 0.0) -> list[Effect]:
        """A liveness check now; its verdicts are applied to the agents."""
        verdicts = liveness(self.agents.values(), self.now, self.limits, frozen_for)
        for v in verdicts:
            a = self.agents[v.agent_id]
            if isinstance(v, Excuse):
                a = replace(a, silent_since=a.silent_since + v.seconds)
            elif isinstance(v, HangUp | MarkDisconnected):
                a = replace(a, state=AgentState.DISCONNECTED, connected=False)
            elif isinstance(v, MarkLost):
                a = replace(a, state=AgentState.LOST, connected=False)
            self.agents[v.agent_id] = a
        self.effects.extend(verdicts)
        return list(verdicts)

    # --- services

    def service(
        self,
        sid: str,
        instances: int,
        *,
        config: int = 1,
        delay_until: float | None = None,
        minimum_health_capacity: float = 1.0,
    ) -> None:
        """Define a service."""
        self.services[sid] = ServiceFacts(
            sid,
            instances,
            config,
            minimum_health_capacity=minimum_health_capacity,
            delay_until=delay_until,
        )

    def instance(
        self, sid: str, tid: str, *, config: int = 1, ready: bool = True, order: float = 0.0
    ) -> None:
        """A live task of ``sid`` nobody asked to stop (placed and running when ``ready``)."""
        inst = Instance(tid, config, placed=ready, running=ready, ready=ready, order=order)
        self.instances.setdefault(sid, []).append(inst)

    def service_pass(self) -> list[Effect]:
        """One pass of the service loop: starts and stops, then the steps it completes."""
        decisions, actions = decide_services(
            self.services, self.deployments, self.instances, self.now
        )
        stopped = {e.task_id for e in actions if isinstance(e, StopTask)}
        for sid, instances in self.instances.items():
            # An unplaced task ends at once; a placed one runs until its agent has stopped it.
            self.stopping[sid] += [i for i in instances if i.id in stopped and i.placed]
            self.instances[sid] = [i for i in instances if i.id not in stopped]
        running = {s for s in self.services.keys() | self.instances.keys() if self._runs(s)}
        done = steps_done(self.deployments, decisions, self.services, running)
        self.effects.extend(actions)
        self.effects.extend(done)
        return [*actions, *done]

    def _runs(self, sid: str) -> bool:
        return bool(self.instances.get(sid) or self.stopping.get(sid))

    def service_task_ended(
        self, end: ServiceTaskEnd, failures: int = 0, backoff: Backoff | None = None
    ) -> list[Effect]:
        """A task of a service ended: the failure it records, if any."""
        b = backoff or Backoff(seconds=1.0, factor=2.0, most=300.0)
        found = record_failure(end, failures, b, self.now)
        if found is None:
            return []
        self.effects.append(found)
        return [found]
