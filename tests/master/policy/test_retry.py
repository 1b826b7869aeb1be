"""The retry policy: which endings of a job's task are retried, after how long, and what a
failure on the last allowed attempt does to the run."""

from __future__ import annotations

import pytest

from corral.master.policy.effects import FinishRun, StartRetry
from corral.master.policy.retry import EndedTask, RetrySettings, decide_retry
from corral.spec.states import RunState, TaskState
from tests.master.policy.harness import Harness

S = TaskState


@pytest.mark.parametrize(
    ("state", "kill_requested", "attempt", "retries", "retried"),
    [
        pytest.param(S.FAILED, False, 0, 2, True, id="a failure with attempts left is retried"),
        pytest.param(S.ERROR, False, 0, 2, True, id="an ERROR with attempts left is retried"),
        pytest.param(S.LOST, False, 0, 2, True, id="a LOST task of a job counts as a failure"),
        pytest.param(
            S.KILLED, False, 0, 2, True, id="a kill nobody asked for (agent shutdown) is retried"
        ),
        pytest.param(S.KILLED, True, 0, 2, False, id="a kill a user asked for is never retried"),
        pytest.param(
            S.LOST, True, 0, 2, False, id="a task lost while a user was killing it is not retried"
        ),
        pytest.param(S.FINISHED, False, 0, 2, False, id="a task that finished is not retried"),
        pytest.param(S.FAILED, False, 2, 2, False, id="the last allowed attempt is not retried"),
        pytest.param(S.FAILED, False, 0, 0, False, id="a job without retries retries nothing"),
    ],
)
def test_which_endings_are_retried(
    state: TaskState, kill_requested: bool, attempt: int, retries: int, retried: bool
) -> None:
    task = EndedTask("j.1.0.0", attempt, state, kill_requested, "")
    found = decide_retry(task, RetrySettings(retries, backoff=1.0, max_delay=60.0), now=100.0)
    assert (found is not None) is retried


@pytest.mark.parametrize(
    ("attempt", "backoff", "cap", "delay"),
    [
        pytest.param(0, 5.0, 300.0, 5.0, id="the first retry waits the base backoff"),
        pytest.param(1, 5.0, 300.0, 10.0, id="the second retry waits twice as long"),
        pytest.param(3, 5.0, 300.0, 40.0, id="each retry doubles the wait"),
        pytest.param(7, 5.0, 300.0, 300.0, id="the wait never grows past the cap"),
        pytest.param(99, 5.0, 300.0, 300.0, id="a long streak stays at the cap"),
        pytest.param(2, 0.0, 300.0, 0.0, id="a zero backoff retries at once"),
    ],
)
def test_the_backoff_grows_and_is_capped(
    attempt: int, backoff: float, cap: float, delay: float
) -> None:
    task = EndedTask("j.1.0.0", attempt, S.FAILED, False, "exit 1")
    found = decide_retry(task, RetrySettings(100, backoff, cap), now=1_000.0)
    assert found is not None
    assert found.not_before == pytest.approx(1_000.0 + delay)
    assert found.attempt == attempt + 1


def test_a_retry_says_which_attempt_of_how_many_after_what() -> None:
    task = EndedTask("j.1.0.0", 0, S.FAILED, False, "exit code 3")
    found = decide_retry(task, RetrySettings(2, backoff=5.0, max_delay=60.0), now=0.0)
    assert found == StartRetry("j.1.0.0", 1, 5.0, "retry 1 of 2 in 5s after FAILED: exit code 3")


def test_a_task_of_no_known_job_is_not_retried() -> None:
    assert decide_retry(EndedTask("/web.x", 0, S.FAILED, False, ""), None, now=0.0) is None


def test_a_failed_task_with_retries_left_is_retried_and_its_run_goes_on() -> None:
    h = Harness()
    h.job("sim", retries=2)
    h.start_run("sim")
    assert h.task_ended("sim", S.FAILED) == [h.retried()[0]]
    assert not any(isinstance(e, FinishRun) for e in h.effects)


def test_a_task_that_failed_its_last_allowed_attempt_ends_its_run_failed() -> None:
    h = Harness()
    h.job("sim", retries=1)
    h.start_run("sim")
    h.task_ended("sim", S.FAILED, attempt=1, reason="exit 1")
    assert h.effects == [FinishRun("sim", 1, RunState.FAILED, "1 FAILED", (("FAILED", 1),))]


PREEMPTED = "preempted by task b.1.0.0 of user bob: bob below share, waited 75 s"


@pytest.mark.parametrize(
    ("state", "attempt", "requeues", "retries", "outcome"),
    [
        pytest.param(S.KILLED, 0, 0, 0, "requeued", id="a preempted task is requeued at once"),
        pytest.param(
            S.KILLED, 3, 1, 2, "requeued", id="whatever retries it has left: none is used"
        ),
        pytest.param(
            S.FAILED, 0, 0, 0, "requeued", id="a preempted task failing as it stops is requeued"
        ),
        pytest.param(S.FINISHED, 0, 0, 2, None, id="a preempted task that finished first is done"),
    ],
)
def test_a_preempted_task_goes_back_to_waiting_without_using_a_retry(
    state: TaskState, attempt: int, requeues: int, retries: int, outcome: str | None
) -> None:
    task = EndedTask("j.1.0.3", attempt, state, True, PREEMPTED, "b.1.0.0", requeues)
    found = decide_retry(task, RetrySettings(retries, backoff=5.0, max_delay=60.0), now=10.0)
    if outcome is None:
        assert found is None
        return
    assert found == StartRetry(
        "j.1.0.3",
        attempt + 1,
        10.0,
        f"requeued after preemption by task b.1.0.0, not counted as a failure: {PREEMPTED}",
        requeue=True,
    )


@pytest.mark.parametrize(
    ("attempt", "requeues", "retried", "reason"),
    [
        pytest.param(2, 2, True, "retry 1 of 1 in 5s", id="after two requeues the retry is left"),
        pytest.param(3, 2, False, "", id="after two requeues and one retry none is left"),
    ],
)
def test_retries_count_the_attempts_that_were_not_requeues(
    attempt: int, requeues: int, retried: bool, reason: str
) -> None:
    task = EndedTask("j.1.0.0", attempt, S.FAILED, False, "exit 1", None, requeues)
    found = decide_retry(task, RetrySettings(1, backoff=5.0, max_delay=60.0), now=0.0)
    assert (found is not None) is retried
    if found is not None:
        assert found.reason.startswith(reason) and found.not_before == 5.0
