"""Retry policy of batch tasks: which endings are retried, and after how long."""

from corral.spec.states import TaskState

RETRIED_STATES = frozenset({TaskState.FAILED, TaskState.LOST, TaskState.ERROR, TaskState.KILLED})


def should_retry(state: TaskState, kill_requested: bool, attempt: int, retries: int) -> bool:
    """A task is retried if it ended badly without a user asking, and attempts remain.

    KILLED counts only when nobody asked for the kill (an agent shutting down, for example).
    """
    return state in RETRIED_STATES and not kill_requested and attempt < retries


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff: ``base * 2**attempt`` seconds, at most ``cap``."""
    return float(min(cap, base * (2.0**attempt)))
