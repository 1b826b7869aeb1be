"""Services: what to start and stop so that each service follows its wanted state, when a
deployment step is done, and which failures count towards the restart backoff.

The per-service decision itself is the scheduling core's pure reconciler
(``corral.scheduler.reconcile``); this module is the glue around it: the mode a deployment puts
a service in, the backoff a start waits for, the tasks of deleted services, the steps.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from corral.master.policy.effects import CompleteStep, RecordFailure, StartTasks, StopTask
from corral.scheduler.reconcile import Decision, Instance, Want, launch_delay, reconcile
from corral.spec.states import TaskState

# A task that ran this long before failing was not crash-looping: its failure starts a new
# backoff streak instead of lengthening the old one.
STABLE_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class ServiceFacts:
    """What the reconciliation needs of a service."""

    id: str
    instances: int
    config: int  # the wanted configuration's number
    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0
    delay_until: float | None = None  # no new task starts before (the restart backoff)


@dataclass(frozen=True, slots=True)
class Action:
    """What one step of a deployment does to one service."""

    app: str
    stop: bool = False  # the service is deleted: the step waits until nothing of it runs
    replaces: bool = False  # a start or restart: new configurations replace old ones


@dataclass(frozen=True, slots=True)
class DeploymentFacts:
    """A running deployment: its steps, in order, and the one it is at."""

    id: str
    steps: tuple[tuple[Action, ...], ...]
    current_step: int


def service_mode(service: str, deployments: Sequence[DeploymentFacts]) -> tuple[bool, bool]:
    """(frozen, upgrading): a service a deployment reaches in a later step waits; a current
    start or restart step replaces old configurations; otherwise the service is steady."""
    upgrading = False
    for dep in deployments:
        for i, step in enumerate(dep.steps):
            action = next((a for a in step if a.app == service), None)
            if action is None:
                continue
            if i > dep.current_step:
                return True, False
            upgrading = upgrading or action.replaces
            break  # a deployment names a service in one step only
    return False, upgrading


def decide_services(
    services: Mapping[str, ServiceFacts],
    deployments: Sequence[DeploymentFacts],
    live: Mapping[str, Sequence[Instance]],
    now: float,
) -> tuple[dict[str, Decision], list[StartTasks | StopTask]]:
    """The reconciler's decision for each service not waiting for its step, and what to do:
    starts (after the backoff, if one runs), then stops, then the tasks of deleted services.
    ``live``: the live tasks nobody asked to stop, per service (deleted ones included)."""
    decisions: dict[str, Decision] = {}
    for sid, svc in services.items():
        frozen, upgrading = service_mode(sid, deployments)
        if frozen:
            continue
        want = Want(
            instances=svc.instances,
            config=svc.config,
            upgrading=upgrading,
            minimum_health_capacity=svc.minimum_health_capacity,
            maximum_over_capacity=svc.maximum_over_capacity,
        )
        decisions[sid] = reconcile(want, live.get(sid, ()))
    effects: list[StartTasks | StopTask] = []
    for sid, d in decisions.items():
        if d.start:
            effects.append(_start(services[sid], d.start, bool(live.get(sid)), now))
    effects += [StopTask(tid, reason) for d in decisions.values() for tid, reason in d.stop]
    effects += [
        StopTask(i.id, "service deleted")
        for sid, instances in live.items()
        if sid not in services
        for i in instances
    ]
    return decisions, effects


def _start(svc: ServiceFacts, count: int, replacing: bool, now: float) -> StartTasks:
    wait = svc.delay_until if svc.delay_until and svc.delay_until > now else None
    why = "replacing a task" if replacing else "starting"
    if wait is not None:
        why += f" after backoff of {wait - now:.1f}s"
    return StartTasks(svc.id, count, wait, why)


def steps_done(
    deployments: Sequence[DeploymentFacts],
    decisions: Mapping[str, Decision],
    services: Collection[str],
    running: Collection[str],
) -> list[CompleteStep]:
    """The deployments whose current step is complete: each stopped service has nothing live
    left (``running``: services with a live task, those being killed included), each other
    one is where the reconciler wanted it (``decisions``) or was deleted since."""
    done: list[CompleteStep] = []
    for dep in deployments:
        at = dep.current_step
        step = dep.steps[at] if at < len(dep.steps) else ()
        if all(_action_done(a, decisions, services, running) for a in step):
            why = f"step {at + 1} of {len(dep.steps)} done" if step else "nothing left to do"
            done.append(CompleteStep(dep.id, why))
    return done


def _action_done(
    a: Action,
    decisions: Mapping[str, Decision],
    services: Collection[str],
    running: Collection[str],
) -> bool:
    if a.stop:
        return a.app not in running
    return a.app not in services or (a.app in decisions and decisions[a.app].done)


@dataclass(frozen=True, slots=True)
class Backoff:
    """A service's restart backoff: ``seconds * factor**(failures - 1)``, at most ``most``."""

    seconds: float
    factor: float
    most: float


@dataclass(frozen=True, slots=True)
class ServiceTaskEnd:
    """A task of a service that has just changed state."""

    service: str
    task_id: str
    state: TaskState
    reason: str
    kill_requested: bool
    agent_shutdown: bool  # it stopped because its agent was shutting down
    started_at: float | None  # when it became RUNNING, if it did


def record_failure(
    end: ServiceTaskEnd, failures: int, backoff: Backoff, now: float
) -> RecordFailure | None:
    """A failure to remember, if the task ended without anyone asking (nor its agent shutting
    down). It counts towards the backoff unless the task was LOST (a lost node is not the
    task's fault); after a stable run (``STABLE_AFTER``) the streak starts again at 1.
    ``failures``: the streak so far."""
    if not end.state.terminal or end.kill_requested or end.agent_shutdown:
        return None
    if end.state is TaskState.LOST:
        return RecordFailure(
            end.service, end.task_id, None, None, "lost: no backoff", end.state, end.reason
        )
    stable = end.started_at is not None and now - end.started_at >= STABLE_AFTER
    streak = 1 if stable else failures + 1
    delay = launch_delay(streak, backoff.seconds, backoff.factor, backoff.most)
    why = f"failure {streak} in a row: next start in {delay:g}s"
    return RecordFailure(end.service, end.task_id, streak, now + delay, why, end.state, end.reason)
