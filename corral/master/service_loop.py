"""The service loop: on every change, compare each service with its live tasks, start and stop
tasks as the service policy decides (``policy/services.py`` around the pure reconciler), and
move deployments on, step by step."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from corral.master.agents import AgentOps
from corral.master.jobs import JobOps
from corral.master.policy.effects import StartTasks, StopTask
from corral.master.policy.services import (
    Action,
    DeploymentFacts,
    ServiceFacts,
    decide_services,
    steps_done,
)
from corral.master.records import LiveTask
from corral.master.service_tasks import SCALE, STOP, DeploymentRecord, task_rows
from corral.master.services import ServiceOps
from corral.master.state import ClusterState
from corral.scheduler.reconcile import Instance
from corral.spec.states import TaskState

log = logging.getLogger(__name__)

# The deployment actions that keep a service's configuration; the others (start, restart)
# replace old configurations with the new one.
KEEP = (SCALE, STOP)


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

    def _facts(self) -> tuple[dict[str, ServiceFacts], list[DeploymentFacts]]:
        """What the service policies need of the services and running deployments."""
        services = {
            sid: ServiceFacts(
                id=sid,
                instances=rec.spec.instances,
                config=rec.config,
                minimum_health_capacity=rec.spec.upgrade.minimum_health_capacity,
                maximum_over_capacity=rec.spec.upgrade.maximum_over_capacity,
                delay_until=rec.delay_until,
            )
            for sid, rec in self.ops.services.items()
        }
        deployments = [
            DeploymentFacts(
                id=dep.id,
                steps=tuple(
                    tuple(
                        Action(a["app"], stop=a["action"] == STOP, replaces=a["action"] not in KEEP)
                        for a in step
                    )
                    for step in dep.steps
                ),
                current_step=dep.current_step,
            )
            for dep in self.ops.deployments.values()
        ]
        return services, deployments

    async def run_once(self) -> None:
        """One pass: start, stop, then advance deployments, as ``decide_services`` and
        ``steps_done`` say."""
        live = self._live()
        services, deployments = self._facts()
        instances = {sid: [instance_of(t) for t in ts] for sid, ts in live.items()}
        now = self.state.clock.now()
        decisions, effects = decide_services(services, deployments, instances, now)
        starts = [e for e in effects if isinstance(e, StartTasks)]
        if starts:
            with self.state.change() as ch:
                for start in starts:
                    rec = self.ops.services[start.service]
                    rows = task_rows(rec, start.count, now, start.not_before)
                    ch.tx.update_service(start.service, next_slot=rec.next_slot + start.count)
                    rec.next_slot += start.count  # memory first: the rows above took these slots
                    self.state.add_pending(ch, rows, now, start.reason)
        stops: dict[str, list[LiveTask]] = defaultdict(list)
        for e in effects:
            if isinstance(e, StopTask):
                stops[e.reason].append(self.state.tasks[e.task_id])
        for reason, victims in stops.items():
            await self.agents.send_kills(self.jobs.kill_tasks(victims, reason), reason)
        # A stop is done when nothing of the service runs, tasks being killed included.
        running = {t.job for t in self.state.tasks.values() if t.service}
        for step in steps_done(deployments, decisions, self.ops.services.keys(), running):
            dep = self.ops.deployments.get(step.deployment)
            if dep is not None:  # not cancelled while the kills went out
                self._step_done(dep, step.reason)

    def _step_done(self, dep: DeploymentRecord, reason: str) -> None:
        now = self.state.clock.now()
        nxt = dep.current_step + 1
        with self.state.change() as ch:
            if dep.steps:
                ch.tx.add_event(
                    time=now,
                    type="deployment_step",
                    job=dep.job,
                    reason=reason,
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
