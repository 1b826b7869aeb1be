"""Retries of batch tasks: which endings are retried, after how long, and what is said."""

from __future__ import annotations

from dataclasses import dataclass

from corral.master.policy.effects import StartRetry
from corral.spec.states import TaskState

RETRIED_STATES = frozenset({TaskState.FAILED, TaskState.LOST, TaskState.ERROR, TaskState.KILLED})


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """A job's retry settings (``JobSpec.retries``, ``retry_backoff``, ``max_retry_delay``)."""

    retries: int  # extra attempts after the first
    backoff: float  # seconds before the first retry; doubles each time
    max_delay: float  # the cap of the backoff


@dataclass(frozen=True, slots=True)
class EndedTask:
    """A task of a job that has just reached a terminal state."""

    id: str
    attempt: int  # 0 for the first
    state: TaskState
    kill_requested: bool  # a user (or the service loop) asked for it to stop
    reason: str  # why it ended, as reported


def should_retry(state: TaskState, kill_requested: bool, attempt: int, retries: int) -> bool:
    """A task is retried if it ended badly without a user asking, and attempts remain.

    KILLED counts only when nobody asked for the kill (an agent shutting down, for example).
    """
    return state in RETRIED_STATES and not kill_requested and attempt < retries


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff: ``base * 2**attempt`` seconds, at most ``cap``."""
    return float(min(cap, base * (2.0**attempt)))


def decide_retry(task: EndedTask, settings: RetrySettings | None, now: float) -> StartRetry | None:
    """The next attempt of ``task``, or None when it is not retried (``settings`` None: the
    task belongs to no job the master knows, such as a service's)."""
    if settings is None or not should_retry(
        task.state, task.kill_requested, task.attempt, settings.retries
    ):
        return None
    delay = retry_delay(task.attempt, settings.backoff, settings.max_delay)
    attempt = task.attempt + 1
    why = f"retry {attempt} of {settings.retries} in {delay:g}s after {task.state.value}"
    return StartRetry(
        task_id=task.id,
        attempt=attempt,
        not_before=now + delay,
        reason=f"{why}: {task.reason}" if task.reason else why,
    )
