"""The service loop: on every change, compare each service with its live tasks, start and stop
tasks as the service policy decides (``policy/services.py`` around the pure reconciler), and
move deployments on, step by step."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from corral.master.agents import AgentOps
from corral.master.applier import Applier, Outbox
from corral.master.policy.services import (
    Action,
    DeploymentFacts,
    ServiceFacts,
    decide_services,
    steps_done,
)
from corral.master.records import LiveTask
from corral.master.service_tasks import SCALE, STOP
from corral.master.services import ServiceOps
from corral.master.state import ClusterState
from corral.scheduler.reconcile import Decision, Instance
from corral.spec.states import TaskState
from corral.store.store import Refusal
from corral.waits import wait_event

log = logging.getLogger(__name__)
RETRY = 1.0  # seconds before a pass the store refused is tried again

# The deployment actions that keep a service's configuration; the others (start, restart)
# replace old configurations with the new one.
KEEP = (SCALE, STOP)


def instance_of(task: LiveTask) -> Instance:
    """What the reconciler needs of a live task."""
    running = task.state is TaskState.RUNNING
    checked = task.health_checked
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
        applier: Applier,
        agents: AgentOps,
        tick: float = 1.0,
    ) -> None:
        self.state = state
        self.ops = ops
        self.applier = applier
        self.agents = agents
        self.tick = tick

    def _live(self) -> dict[str, list[LiveTask]]:
        """Live tasks per service, those asked to stop left out."""
        live: dict[str, list[LiveTask]] = defaultdict(list)
        for sid in self._with_tasks():
            wanted = [t for t in self.state.index.of_job(sid) if not t.kill_requested]
            if wanted:
                live[sid] = wanted
        return live

    def _with_tasks(self) -> list[str]:
        """The services with live tasks: read from the index by job, so a pass costs the
        services' tasks, not every live task (a job's 100,000 waiting ones)."""
        return [j for j in self.state.index.jobs() if j.startswith("/")]

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
        ``steps_done`` say. Each step decides and writes in one writer's turn, off the loop."""
        out, deployments, decisions = await self.state.write(self._start_and_stop)
        if out:
            await self.agents.deliver(out)
        await self.state.write(self._advance, deployments, decisions)

    def _start_and_stop(self) -> tuple[Outbox, list[DeploymentFacts], dict[str, Decision]]:
        live = self._live()
        services, deployments = self._facts()
        instances = {sid: [instance_of(t) for t in ts] for sid, ts in live.items()}
        now = self.state.clock.now()
        decisions, effects = decide_services(services, deployments, instances, now)
        out = Outbox()
        if effects:
            with self.state.change() as ch:
                out = self.applier.apply(ch, effects, now)
        return out, deployments, decisions

    def _advance(self, deployments: list[DeploymentFacts], decisions: dict[str, Decision]) -> None:
        # A stop is done when nothing of the service runs, tasks being killed included.
        running = set(self._with_tasks())
        done = steps_done(deployments, decisions, self.ops.services.keys(), running)
        if done:
            with self.state.change() as ch:
                self.applier.apply(ch, done, self.state.clock.now())

    async def run_forever(self) -> None:
        """Reconcile on every wake-up, and at least every ``tick`` seconds."""
        while True:
            await wait_event(self.ops.wake, self.tick)
            self.ops.wake.clear()
            try:
                await self.run_once()
            except Refusal as e:  # tried again a little later, when the store may be back
                log.warning("service pass failed: %s", e)
                asyncio.get_running_loop().call_later(RETRY, self.ops.wake.set)
            except Exception:  # a bad pass must not stop the services for good
                log.exception("service pass failed")
