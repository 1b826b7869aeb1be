"""Retries of batch tasks: which endings are retried, after how long, and what is said; and
the same decision for a gang, whose ranks are stopped and retried as a whole."""

from __future__ import annotations

from dataclasses import dataclass

from corral.master.policy.effects import RetryGang, StartRetry, StopGang
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
    preempted_by: str | None = None  # it was asked to stop to make room for this task
    requeues: int = 0  # earlier attempts of its slot that were preempted


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
    task belongs to no job the master knows, such as a service's).

    A task preempted (stopped to make room for another user's) goes back to waiting at once,
    whatever its retries: it did not fail, and its requeue uses up none of them. Retries count
    the attempts that were not requeues.
    """
    if settings is None:
        return None
    if task.preempted_by is not None and task.state is not TaskState.FINISHED:
        why = f"requeued after preemption by task {task.preempted_by}, not counted as a failure"
        return StartRetry(
            task_id=task.id,
            attempt=task.attempt + 1,
            not_before=now,
            reason=f"{why}: {task.reason}" if task.reason else why,
            requeue=True,
        )
    tries = task.attempt - task.requeues  # the attempts that failed before this one
    if not should_retry(task.state, task.kill_requested, tries, settings.retries):
        return None
    delay = retry_delay(tries, settings.backoff, settings.max_delay)
    why = f"retry {tries + 1} of {settings.retries} in {delay:g}s after {task.state.value}"
    return StartRetry(
        task_id=task.id,
        attempt=task.attempt + 1,
        not_before=now + delay,
        reason=f"{why}: {task.reason}" if task.reason else why,
    )


@dataclass(frozen=True, slots=True)
class GangRank:
    """A live rank of a gang's attempt."""

    task_id: str
    rank: int
    stopping: bool  # asked to stop already


@dataclass(frozen=True, slots=True)
class GangEnd:
    """What the gang policy needs to know of the gang a rank (an ``EndedTask``) ended in."""

    job: str
    run: int
    rank: int  # the ended task's
    every_rank: bool  # every rank runs the command (else rank 0 runs it, the others wait)
    others: tuple[GangRank, ...]  # the attempt's other ranks still live
    superseded: bool  # a newer attempt of the gang exists: this one was retried already

    @property
    def gang(self) -> str:
        """The gang's name."""
        return f"{self.job}.{self.run}"


def decide_gang(
    task: EndedTask, end: GangEnd, settings: RetrySettings | None, now: float
) -> list[StopGang | RetryGang]:
    """What follows from a rank of a gang ending (it replaces :func:`decide_retry` for ranks).

    - Rank 0 finished (the ranks wait for its mpirun): the others are done, they finish.
    - A rank finished (every rank runs the command): nothing; the gang ends with its last.
    - A rank of an attempt that was retried already: nothing.
    - A rank killed on request: the others are killed too; nothing is retried.
    - A rank failed (FAILED, ERROR, LOST, KILLED unasked): the others are killed, and the whole
      gang is retried while attempts remain (``retries`` and backoff as for any task).
    """
    live = tuple(o.task_id for o in end.others if not o.stopping)
    gang = end.gang
    if task.state is TaskState.FINISHED:
        if end.every_rank or end.rank != 0 or not live:
            return []
        return [StopGang(gang, live, True, f"gang {gang} done: rank 0 finished")]
    if end.superseded:
        return []
    if task.kill_requested:
        why = f"gang {gang} stopped: rank {end.rank} was killed on request"
        return [StopGang(gang, live, False, why)] if live else []
    what = f"rank {end.rank} {task.state.value}" + (f": {task.reason}" if task.reason else "")
    effects: list[StopGang | RetryGang] = []
    if live:
        effects.append(StopGang(gang, live, False, f"gang {gang} stopped: {what}"))
    if settings is not None and should_retry(task.state, False, task.attempt, settings.retries):
        delay = retry_delay(task.attempt, settings.backoff, settings.max_delay)
        attempt = task.attempt + 1
        why = f"retry {attempt} of {settings.retries} of gang {gang} in {delay:g}s after {what}"
        effects.append(RetryGang(end.job, end.run, attempt, now + delay, why))
    return effects
