"""The run outcome: from the newest attempts of a run's tasks to SUCCEEDED, FAILED or KILLED."""

from __future__ import annotations

import pytest

from corral.master.policy.effects import FinishRun, MarkRunRunning
from corral.master.policy.runs import RunTally, finish_run, run_outcome, run_running
from corral.spec.states import RunState, TaskState
from tests.master.policy.harness import Harness

S = TaskState


@pytest.mark.parametrize(
    ("tally", "outcome"),
    [
        pytest.param(RunTally(0, {S.FINISHED: 3}, 0), RunState.SUCCEEDED, id="all finished"),
        pytest.param(
            RunTally(1, {S.FINISHED: 2}, 0), None, id="a run with a live task has no outcome yet"
        ),
        pytest.param(
            RunTally(1, {S.FAILED: 2}, 0), None, id="a failure does not end a run that still runs"
        ),
        pytest.param(
            RunTally(0, {S.FINISHED: 2, S.FAILED: 1}, 0),
            RunState.FAILED,
            id="one failed task fails the run",
        ),
        pytest.param(
            RunTally(0, {S.FINISHED: 2, S.LOST: 1}, 0),
            RunState.FAILED,
            id="a task LOST after its last attempt fails the run",
        ),
        pytest.param(
            RunTally(0, {S.FINISHED: 1, S.KILLED: 1}, 1),
            RunState.KILLED,
            id="a task killed on request makes the run KILLED",
        ),
        pytest.param(
            RunTally(0, {S.FAILED: 1, S.KILLED: 1}, 1),
            RunState.KILLED,
            id="a kill on request outweighs a failure",
        ),
        pytest.param(
            RunTally(0, {S.KILLED: 1}, 0),
            RunState.FAILED,
            id="a kill nobody asked for fails the run",
        ),
        pytest.param(RunTally(0, {}, 0), RunState.SUCCEEDED, id="a run without tasks succeeded"),
    ],
)
def test_the_outcome_of_a_run(tally: RunTally, outcome: RunState | None) -> None:
    assert run_outcome(tally) is outcome


def test_the_finished_run_names_its_counts() -> None:
    tally = RunTally(0, {S.FINISHED: 95, S.FAILED: 1}, 0)
    assert finish_run("sweep", 4, tally) == FinishRun(
        "sweep", 4, RunState.FAILED, "1 FAILED, 95 FINISHED", (("FAILED", 1), ("FINISHED", 95))
    )


def test_the_last_of_three_tasks_to_finish_ends_the_run() -> None:
    h = Harness()
    h.job("sweep")
    h.start_run("sweep", tasks=3)
    assert h.task_ended("sweep", S.FINISHED) == []
    assert h.task_ended("sweep", S.FINISHED) == []
    assert h.task_ended("sweep", S.FINISHED) == [
        FinishRun("sweep", 1, RunState.SUCCEEDED, "3 FINISHED", (("FINISHED", 3),))
    ]


def test_a_run_whose_task_is_retried_ends_with_the_retry() -> None:
    h = Harness()
    h.job("sim", retries=1)
    h.start_run("sim")
    h.task_ended("sim", S.LOST)  # retried: the run keeps one live task, the new attempt
    assert h.task_ended("sim", S.FINISHED, attempt=1) == [
        FinishRun("sim", 1, RunState.SUCCEEDED, "1 FINISHED", (("FINISHED", 1),))
    ]


@pytest.mark.parametrize(
    ("current", "effect"),
    [
        pytest.param(
            RunState.PENDING,
            MarkRunRunning("sim", 1, "task sim.1.0.0 is RUNNING"),
            id="a PENDING run is RUNNING once its first task runs",
        ),
        pytest.param(RunState.RUNNING, None, id="a RUNNING run is marked only once"),
        pytest.param(None, None, id="a task of no open run (a service's) marks nothing"),
    ],
)
def test_a_run_starts_running(current: RunState | None, effect: MarkRunRunning | None) -> None:
    assert run_running("sim", 1, current, "sim.1.0.0") == effect
