"""Services: the glue around the reconciler (deployment modes, backoff on starts, the tasks of
deleted services, deployment steps) and which failures count towards the restart backoff."""

from __future__ import annotations

import pytest

from corral.master.policy.effects import CompleteStep, RecordFailure, StartTasks, StopTask
from corral.master.policy.services import (
    Action,
    DeploymentFacts,
    ServiceTaskEnd,
    service_mode,
)
from corral.spec.states import TaskState
from tests.master.policy.harness import Harness

S = TaskState


def deployment(*steps: tuple[Action, ...], at: int = 0) -> DeploymentFacts:
    return DeploymentFacts("d1", steps, at)


def test_a_new_service_starts_its_instances() -> None:
    h = Harness()
    h.service("/web", 3)
    assert h.service_pass() == [StartTasks("/web", 3, None, "starting")]


def test_a_service_in_backoff_starts_its_replacement_after_the_delay() -> None:
    h = Harness(now=100.0)
    h.service("/web", 2, delay_until=104.0)
    h.instance("/web", "t1")
    assert h.service_pass() == [
        StartTasks("/web", 1, 104.0, "replacing a task after backoff of 4.0s")
    ]


def test_a_backoff_that_has_passed_delays_nothing() -> None:
    h = Harness(now=100.0)
    h.service("/web", 2, delay_until=99.0)
    h.instance("/web", "t1")
    assert h.service_pass() == [StartTasks("/web", 1, None, "replacing a task")]


def test_the_tasks_of_a_deleted_service_are_stopped() -> None:
    h = Harness()
    h.instance("/gone", "t1")
    assert h.service_pass() == [StopTask("t1", "service deleted")]


def test_a_service_a_deployment_reaches_in_a_later_step_waits() -> None:
    h = Harness()
    h.service("/db", 1)
    h.service("/web", 1)
    h.deployments.append(deployment((Action("/db", replaces=True),), (Action("/web"),)))
    assert h.service_pass() == [StartTasks("/db", 1, None, "starting")]


def test_a_step_is_complete_once_its_services_are_ready() -> None:
    h = Harness()
    h.service("/db", 1)
    h.instance("/db", "t1")
    h.deployments.append(deployment((Action("/db", replaces=True),)))
    assert h.service_pass() == [CompleteStep("d1", "step 1 of 1 done")]


def test_a_stop_step_waits_until_nothing_of_the_service_runs() -> None:
    h = Harness()
    h.instance("/old", "t1")
    h.deployments.append(deployment((Action("/old", stop=True),)))
    assert h.service_pass() == [StopTask("t1", "service deleted")]  # t1 is being killed
    h.stopping.clear()  # its agent reported it KILLED
    assert h.service_pass() == [CompleteStep("d1", "step 1 of 1 done")]


def test_a_pending_task_of_a_stopped_service_ends_at_once_and_the_step_with_it() -> None:
    h = Harness()
    h.instance("/old", "t1", ready=False)
    h.deployments.append(deployment((Action("/old", stop=True),)))
    assert h.service_pass() == [
        StopTask("t1", "service deleted"),
        CompleteStep("d1", "step 1 of 1 done"),
    ]


@pytest.mark.parametrize(
    ("deployments", "mode"),
    [
        pytest.param([], (False, False), id="without a deployment a service is steady"),
        pytest.param(
            [deployment((Action("/web", replaces=True),))],
            (False, True),
            id="a current restart step upgrades",
        ),
        pytest.param(
            [deployment((Action("/web"),))], (False, False), id="a current scale step is steady"
        ),
        pytest.param(
            [deployment((Action("/db"),), (Action("/web", replaces=True),))],
            (True, False),
            id="a later step freezes the service",
        ),
        pytest.param(
            [deployment((Action("/db"),), (Action("/web", replaces=True),), at=1)],
            (False, True),
            id="the step reached unfreezes it",
        ),
    ],
)
def test_the_mode_a_deployment_puts_a_service_in(
    deployments: list[DeploymentFacts], mode: tuple[bool, bool]
) -> None:
    assert service_mode("/web", deployments) == mode


def end(
    state: TaskState,
    *,
    kill_requested: bool = False,
    agent_shutdown: bool = False,
    started_at: float | None = None,
) -> ServiceTaskEnd:
    return ServiceTaskEnd("/web", "t1", state, "", kill_requested, agent_shutdown, started_at)


@pytest.mark.parametrize(
    ("ended", "failures", "found"),
    [
        pytest.param(
            end(S.FAILED),
            0,
            RecordFailure(
                "/web", "t1", 1, 1_001.0, "failure 1 in a row: next start in 1s", S.FAILED, ""
            ),
            id="a first failure waits the base backoff",
        ),
        pytest.param(
            end(S.FAILED),
            3,
            RecordFailure(
                "/web", "t1", 4, 1_008.0, "failure 4 in a row: next start in 8s", S.FAILED, ""
            ),
            id="a crash loop's backoff grows",
        ),
        pytest.param(
            end(S.FAILED),
            20,
            RecordFailure(
                "/web", "t1", 21, 1_300.0, "failure 21 in a row: next start in 300s", S.FAILED, ""
            ),
            id="the backoff is capped",
        ),
        pytest.param(
            end(S.FAILED, started_at=900.0),
            5,
            RecordFailure(
                "/web", "t1", 1, 1_001.0, "failure 1 in a row: next start in 1s", S.FAILED, ""
            ),
            id="a failure after a stable minute starts a new streak",
        ),
        pytest.param(
            end(S.LOST),
            5,
            RecordFailure("/web", "t1", None, None, "lost: no backoff", S.LOST, ""),
            id="a LOST task of a service is recorded but does not count towards the backoff",
        ),
        pytest.param(
            end(S.KILLED, kill_requested=True), 0, None, id="a kill on request is no failure"
        ),
        pytest.param(
            end(S.KILLED, agent_shutdown=True), 0, None, id="a stop with its agent is no failure"
        ),
        pytest.param(end(S.RUNNING), 0, None, id="a task that still runs has not failed"),
    ],
)
def test_which_failures_count_towards_the_backoff(
    ended: ServiceTaskEnd, failures: int, found: RecordFailure | None
) -> None:
    h = Harness(now=1_000.0)
    assert h.service_task_ended(ended, failures) == ([] if found is None else [found])
