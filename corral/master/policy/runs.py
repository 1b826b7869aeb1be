"""A run's state: RUNNING once a task runs; its outcome from the states of its tasks' newest
attempts once none is live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corral.master.policy.effects import FinishRun, MarkRunRunning
from corral.spec.states import RunState, TaskState


@dataclass(frozen=True, slots=True)
class RunTally:
    """A run's tasks, newest attempt of each slot only (a retried attempt does not count)."""

    live: int  # not terminal yet (a retry waiting for its backoff is live)
    ended: Mapping[TaskState, int]  # terminal ones, per state
    killed: int  # of the ended ones, how many were killed on request
    # A gang's run: a rank that failed unasked (``failed`` of them) is the run's failure, even
    # though the master then killed the others (on request) for it.
    gang: bool = False
    failed: int = 0


def run_outcome(tally: RunTally) -> RunState | None:
    """SUCCEEDED when every task finished, KILLED when one was killed on request (and, in a
    gang, none failed unasked), otherwise FAILED; None while a task is live (a run without
    tasks has succeeded)."""
    if tally.live > 0:
        return None
    if tally.ended.get(TaskState.FINISHED, 0) == sum(tally.ended.values()):
        return RunState.SUCCEEDED
    if tally.killed and not (tally.gang and tally.failed):
        return RunState.KILLED
    return RunState.FAILED


def finish_run(job: str, run: int, tally: RunTally) -> FinishRun | None:
    """The effect that ends run ``run`` of ``job``, if it has an outcome."""
    outcome = run_outcome(tally)
    if outcome is None:
        return None
    ended = sorted(tally.ended.items())
    counts = ", ".join(f"{n} {s.value}" for s, n in ended if n)
    return FinishRun(job, run, outcome, counts or "no tasks", tuple((s.value, n) for s, n in ended))


def run_running(
    job: str, run: int, current: RunState | None, task_id: str
) -> MarkRunRunning | None:
    """A PENDING run becomes RUNNING when task ``task_id`` of it runs; a run in any other state
    (``current`` None: not an open run, such as a service's configuration) stays as it is."""
    if current is not RunState.PENDING:
        return None
    return MarkRunRunning(job, run, f"task {task_id} is RUNNING")
