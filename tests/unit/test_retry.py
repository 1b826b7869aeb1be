"""Retry policy (``corral.master.retry``): which endings are retried, and after how long."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.master.retry import retry_delay, should_retry
from corral.spec.states import TaskState

S = TaskState


@pytest.mark.parametrize(
    ("state", "kill_requested", "attempt", "retries", "retried"),
    [
        pytest.param(S.FAILED, False, 0, 1, True, id="a failure with retries left is retried"),
        pytest.param(S.LOST, False, 0, 2, True, id="a lost task with retries left is retried"),
        pytest.param(S.ERROR, False, 1, 2, True, id="an error with retries left is retried"),
        pytest.param(
            S.KILLED, False, 0, 1, True, id="a kill nobody asked for (agent shutdown) is retried"
        ),
        pytest.param(S.KILLED, True, 0, 3, False, id="a kill the user asked for is not retried"),
        pytest.param(
            S.FAILED,
            True,
            0,
            3,
            False,
            id="a failure after the user asked for a kill is not retried",
        ),
        pytest.param(
            S.LOST, True, 0, 3, False, id="a lost task the user was killing is not retried"
        ),
        pytest.param(S.FINISHED, False, 0, 3, False, id="a finished task is not retried"),
        pytest.param(S.FAILED, False, 0, 0, False, id="a failure without retries is not retried"),
        pytest.param(S.FAILED, False, 2, 2, False, id="the last allowed attempt is not retried"),
        pytest.param(S.FAILED, False, 1, 2, True, id="the attempt before the last is retried"),
        pytest.param(S.LOST, False, 5, 2, False, id="an attempt past the limit is not retried"),
    ],
)
def test_a_task_is_retried_if_it_ended_badly_unasked_with_attempts_left(
    state: TaskState, kill_requested: bool, attempt: int, retries: int, retried: bool
) -> None:
    assert should_retry(state, kill_requested, attempt, retries) is retried


@pytest.mark.parametrize("state", [S.PENDING, S.STAGING, S.STARTING, S.RUNNING, S.FINISHED])
def test_a_task_that_did_not_end_badly_is_never_retried(state: TaskState) -> None:
    assert not should_retry(state, False, 0, 100)


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "delay"),
    [
        (0, 1.0, 300.0, 1.0),  # the first retry waits the base backoff
        (1, 1.0, 300.0, 2.0),
        (2, 1.0, 300.0, 4.0),
        (3, 0.2, 300.0, 1.6),
        (8, 1.0, 300.0, 256.0),
        (9, 1.0, 300.0, 300.0),  # 512 capped
        (100, 1.0, 300.0, 300.0),  # the largest attempt a spec allows
        (5, 0.0, 300.0, 0.0),  # no backoff at all
        (0, 10.0, 5.0, 5.0),  # a cap below the base wins
        (3, 1.0, 0.0, 0.0),
    ],
)
def test_retry_delay_doubles_from_the_base_up_to_the_cap(
    attempt: int, base: float, cap: float, delay: float
) -> None:
    assert retry_delay(attempt, base, cap) == pytest.approx(delay)
    assert isinstance(retry_delay(attempt, base, cap), float)


@given(
    st.integers(0, 99),
    st.floats(0, 3600, allow_nan=False),
    st.floats(0, 86400, allow_nan=False),
)
def test_each_retry_waits_twice_the_last_until_the_cap_holds_it(
    attempt: int, base: float, cap: float
) -> None:
    this, following = retry_delay(attempt, base, cap), retry_delay(attempt + 1, base, cap)
    assert 0 <= this <= following <= cap
    assert following == pytest.approx(min(cap, 2 * this)) or this == cap
