"""The service loop: on every change, compare each service with its live tasks, start and stop
tasks as the pure reconciler decides, and move deployments on, step by step."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from corral.master.agents import AgentOps
from corral.master.jobs import JobOps
from corral.master.records import LiveTask
from corral.master.service_tasks import SCALE, STOP, DeploymentRecord, task_rows
from corral.master.services import ServiceOps
from corral.master.state import ClusterState
from corral.scheduler.reconcile import Decision, Instance, Want, reconcile
from corral.spec.states import TaskState

log = logging.getLogger(__name__)


def instance_of(task: LiveTask) -> Instance:
    """What the reconciler needs of a live task."""
    running = task.state is TaskState.RUNNING
    checked = bool(task.launch.health_checks)
    return Instance(
        id=task.id,
        config=task.run,
        placed=task.state is not TaskState.PENDING,
        running=running,
        ready=running and (task.healthy is True if checked else task.healthy is not False),
        order=task.created_at,
    )


class ServiceLoop:
    """Keeps services at their desired state; runs on every wake-up and every ``tick``."""

    def __init__(
        self,
        state: ClusterState,
        ops: ServiceOps,
        jobs: JobOps,
        agents: AgentOps,
        tick: float = 1.0,
    ) -> None:
        self.state = state
        self.ops = ops
        self.jobs = jobs
        self.agents = agents
        self.tick = tick

    def _live(self) -> dict[str, list[LiveTask]]:
        """Live tasks per service, those asked to stop left out."""
        live: dict[str, list[LiveTask]] = defaultdict(list)
        for t in self.state.tasks.values():
            if t.service and not t.kill_requested:
                live[t.job].append(t)
        return live

    def _mode(self, service_id: str) -> tuple[bool, bool]:
        """(frozen, upgrading): a later step of a deployment waits; a start or restart step
        replaces old configurations, other steps and no deployment keep the steady mode."""
        upgrading = False
        for dep in self.ops.deployments.values():
            found = dep.action_of(service_id)
            if found is None:
                continue
            step, action = found
            if step > dep.current_step:
                return True, False
            upgrading = upgrading or action not in (SCALE, STOP)
        return False, upgrading

    def decide(self, live: dict[str, list[LiveTask]]) -> dict[str, Decision]:
        """The reconciler's decision for every service that is not waiting for its step."""
        decisions: dict[str, Decision] = {}
        for sid, rec in self.ops.services.items():
            frozen, upgrading = self._mode(sid)
            if frozen:
                continue
            up = rec.spec.upgrade
            want = Want(
                instances=rec.spec.instances,
                config=rec.config,
                upgrading=upgrading,
                minimum_health_capacity=up.minimum_health_capacity,
                maximum_over_capacity=up.maximum_over_capacity,
            )
            decisions[sid] = reconcile(want, [instance_of(t) for t in live.get(sid, ())])
        return decisions

    async def run_once(self) -> None:
        """One pass: start, stop, then advance deployments."""
        live = self._live()
        decisions = self.decide(live)
        now = self.state.clock.now()
        starting = {sid: d.start for sid, d in decisions.items() if d.start}
        if starting:
            with self.state.change() as ch:
                for sid, count in starting.items():
                    rec = self.ops.services[sid]
                    wait = rec.delay_until if rec.delay_until and rec.delay_until > now else None
                    rows = task_rows(rec, count, now, wait)
                    ch.tx.update_service(sid, next_slot=rec.next_slot + count)
                    rec.next_slot += count  # memory first: the rows above took these slots
                    why = "replacing a task" if live.get(sid) else "starting"
                    if wait is not None:
                        why += f" after backoff of {wait - now:.1f}s"
                    self.state.add_pending(ch, rows, now, why)
        stops: dict[str, list[LiveTask]] = defaultdict(list)
        for d in decisions.values():
            for tid, reason in d.stop:
                stops[reason].append(self.state.tasks[tid])
        orphans = [t for sid, ts in live.items() if sid not in self.ops.services for t in ts]
        if orphans:
            stops["service deleted"].extend(orphans)
        for reason, victims in stops.items():
            await self.agents.send_kills(self.jobs.kill_tasks(victims, reason), reason)
        self._advance(decisions)

    def _advance(self, decisions: dict[str, Decision]) -> None:
        """Complete the current step of each deployment whose services are where it wants."""
        # A stop is done when nothing of the service runs, tasks being killed included.
        running = {t.job for t in self.state.tasks.values() if t.service}
        for dep in list(self.ops.deployments.values()):
            step = dep.steps[dep.current_step] if dep.current_step < len(dep.steps) else []
            done = all(
                a["app"] not in running
                if a["action"] == STOP
                else a["app"] not in self.ops.services  # deleted since: nothing to wait for
                or (a["app"] in decisions and decisions[a["app"]].done)
                for a in step
            )
            if done:
                self._step_done(dep)

    def _step_done(self, dep: DeploymentRecord) -> None:
        now = self.state.clock.now()
        nxt = dep.current_step + 1
        with self.state.change() as ch:
            if dep.steps:
                ch.tx.add_event(
                    time=now,
                    type="deployment_step",
                    job=dep.job,
                    data={"id": dep.id, "step": nxt, "actions": dep.steps[dep.current_step]},
                )
            for a in dep.steps[dep.current_step] if dep.steps else []:
                if a["action"] == STOP and a["app"] not in self.ops.services:
                    ch.tx.delete_service(a["app"])  # the rows of its tasks, all ended now
            if nxt >= len(dep.steps):
                ch.tx.update_deployment(dep.id, current_step=nxt)
                self.ops.finish(ch, dep, "SUCCEEDED", "")
            else:
                ch.tx.update_deployment(dep.id, current_step=nxt)
                ch.after(lambda: setattr(dep, "current_step", nxt))
                ch.after(self.ops.wake.set)

    async def run_forever(self) -> None:
        """Reconcile on every wake-up, and at least every ``tick`` seconds."""
        while True:
            try:
                await asyncio.wait_for(self.ops.wake.wait(), self.tick)
            except TimeoutError:
                pass
            self.ops.wake.clear()
            try:
                await self.run_once()
            except Exception:  # a bad pass must not stop the services for good
                log.exception("service pass failed")
