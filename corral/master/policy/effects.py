"""What the policies ask the master to do: small frozen records, each with the reason that ends
up in the event log. The master applies them; a test records them."""

from __future__ import annotations

from dataclasses import dataclass

from corral.spec.states import RunState, TaskState


@dataclass(frozen=True, slots=True)
class StartRetry:
    """Start the next attempt of a task of a job, once ``not_before`` has passed."""

    task_id: str  # the attempt that ended
    attempt: int  # the new attempt's number
    not_before: float
    reason: str
    requeue: bool = False  # the attempt was preempted: back to waiting, no retry used


@dataclass(frozen=True, slots=True)
class MarkRunRunning:
    """A PENDING run is RUNNING: one of its tasks runs."""

    job: str
    run: int
    reason: str


@dataclass(frozen=True, slots=True)
class FinishRun:
    """Give a run its outcome: none of its tasks is live any more."""

    job: str
    run: int
    outcome: RunState
    reason: str
    counts: tuple[tuple[str, int], ...] = ()  # the ended tasks per state, for the event


@dataclass(frozen=True, slots=True)
class StartRun:
    """Start a new run of a job (a child whose parents have all succeeded)."""

    job: str
    reason: str


@dataclass(frozen=True, slots=True)
class SkipRun:
    """Record that a run was due but did not start."""

    job: str
    reason: str


@dataclass(frozen=True, slots=True)
class Excuse:
    """The master was frozen: count the agent's silence from ``seconds`` later."""

    agent_id: str
    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class HangUp:
    """Close the agent's silent connection (on both ends) and mark it DISCONNECTED."""

    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class MarkDisconnected:
    """Record as DISCONNECTED an agent whose connection is already gone."""

    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class MarkLost:
    """Declare the agent LOST, and every task it had with it."""

    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StartTasks:
    """Start ``count`` new tasks of a service's wanted configuration."""

    service: str
    count: int
    not_before: float | None  # the restart backoff, if one is running
    reason: str


@dataclass(frozen=True, slots=True)
class StopTask:
    """Stop a live task of a service."""

    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class CompleteStep:
    """The current step of a deployment is done: move on to the next (or finish)."""

    deployment: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """A service's task ended without being asked: keep it as the last failure, and (unless
    ``failures`` is None) count it towards the restart backoff."""

    service: str
    task_id: str
    failures: int | None  # the streak of failures now; None: this one does not count
    delay_until: float | None  # no replacement starts before (None with ``failures``)
    reason: str
    ended: TaskState  # how the task ended, and why: the failure as Marathon shows it
    cause: str


@dataclass(frozen=True, slots=True)
class StopGang:
    """Stop the live ranks of a gang's attempt: its work is done (``finish``: they end
    FINISHED), or one rank's end broke the gang (they end KILLED, asked to)."""

    gang: str
    task_ids: tuple[str, ...]
    finish: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RetryGang:
    """Start the next attempt of every rank of a gang's run, once ``not_before`` has passed."""

    job: str
    run: int
    attempt: int  # the new attempt's number
    not_before: float
    reason: str


Effect = (
    StartRetry
    | MarkRunRunning
    | FinishRun
    | StartRun
    | SkipRun
    | Excuse
    | HangUp
    | MarkDisconnected
    | MarkLost
    | StartTasks
    | StopTask
    | CompleteStep
    | RecordFailure
    | StopGang
    | RetryGang
)
