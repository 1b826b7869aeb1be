"""Accounting's sums, with tables: running time clipped to the window (a running task counts
until now), outcomes counted in the window they ended in, per user or group."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from corral.master.usage import Span, outcome, running_seconds, tally, total
from corral.spec.states import TaskState

T0 = 1_800_000_000.0
HOUR = 3600.0


def span(
    started: float | None,
    finished: float | None,
    state: TaskState = TaskState.FINISHED,
    owner: str = "alice",
    group: str = "physics",
    cpus: float = 1,
    mem: int = 1024,
    gpus: int = 0,
    preempted: bool = False,
) -> Span:
    return Span(owner, group, round(cpus * 1000), mem, gpus, state, started, finished, preempted)


@dataclass(frozen=True)
class Clip:
    span: Span
    since: float
    until: float
    now: float
    seconds: float


CLIPS = {
    "a task wholly inside the window counts whole": Clip(
        span(T0 + 10, T0 + 70), T0, T0 + HOUR, T0 + 2 * HOUR, 60
    ),
    "a task started before the window counts from its start": Clip(
        span(T0 - 100, T0 + 50), T0, T0 + HOUR, T0 + 2 * HOUR, 50
    ),
    "a task ending after the window counts until its end": Clip(
        span(T0 + HOUR - 30, T0 + HOUR + 500), T0, T0 + HOUR, T0 + 2 * HOUR, 30
    ),
    "a running task counts until now": Clip(
        span(T0 + 100, None, TaskState.RUNNING), T0, T0 + HOUR, T0 + 400, 300
    ),
    "a running task counts until the window's end when that comes first": Clip(
        span(T0 + 100, None, TaskState.RUNNING), T0, T0 + 200, T0 + 400, 100
    ),
    "a task that never ran counts no time": Clip(
        span(None, T0 + 10, TaskState.FAILED), T0, T0 + HOUR, T0 + HOUR, 0
    ),
    "a task outside the window counts no time": Clip(
        span(T0 - 200, T0 - 100), T0, T0 + HOUR, T0 + HOUR, 0
    ),
}


@pytest.mark.parametrize("case", CLIPS.values(), ids=list(CLIPS))
def test_running_time_is_clipped_to_the_window(case: Clip) -> None:
    assert running_seconds(case.span, case.since, case.until, case.now) == case.seconds


OUTCOMES = {
    "finished": (TaskState.FINISHED, False, "finished"),
    "failed": (TaskState.FAILED, False, "failed"),
    "an error is a failure": (TaskState.ERROR, False, "failed"),
    "killed": (TaskState.KILLED, False, "killed"),
    "lost": (TaskState.LOST, False, "lost"),
    "killed to make room is preempted": (TaskState.KILLED, True, "preempted"),
    "a preempted task that finished first finished": (TaskState.FINISHED, True, "finished"),
    "running has no outcome": (TaskState.RUNNING, False, None),
}


@pytest.mark.parametrize("state,preempted,expected", OUTCOMES.values(), ids=list(OUTCOMES))
def test_each_ending_counts_under_its_outcome(
    state: TaskState, preempted: bool, expected: str | None
) -> None:
    assert outcome(state, preempted) == expected


def test_usage_per_user_and_group_sums_resources_times_hours_and_outcomes_in_the_window() -> None:
    spans = [
        # alice: 4 cpus, 4 GiB for the window's first half hour (started before it), then
        # one with a GPU for its second half (ending after it)
        span(T0 - 1800, T0 + 1800, cpus=4, mem=4096),
        span(T0 + 1800, T0 + HOUR + 1800, TaskState.FAILED, gpus=1),
        # bob (group bio): half an hour with 4 cpus and a GPU, preempted
        span(T0, T0 + 1800, TaskState.KILLED, "bob", "bio", cpus=4, gpus=1, preempted=True),
        # carol (physics) ended before the window: no time, no outcome
        span(T0 - 100, T0 - 10, TaskState.LOST, "carol"),
    ]
    users = tally(spans, T0, T0 + HOUR, T0 + 2 * HOUR, "user")
    assert [u.name for u in users] == ["alice", "bob", "carol"]
    alice, bob, carol = users
    assert (alice.cpu_hours, alice.mem_gib_hours, alice.gpu_hours) == (2.5, 2.5, 0.5)
    assert alice.tasks == {"finished": 1, "failed": 0, "killed": 0, "lost": 0, "preempted": 0}
    assert (bob.cpu_hours, bob.mem_gib_hours, bob.gpu_hours) == (2.0, 0.5, 0.5)
    assert bob.tasks["preempted"] == 1 and bob.tasks["killed"] == 0
    assert (carol.cpu_hours, sum(carol.tasks.values())) == (0.0, 0)

    groups = tally(spans, T0, T0 + HOUR, T0 + 2 * HOUR, "group")
    assert [(g.name, g.cpu_hours) for g in groups] == [("bio", 2.0), ("physics", 2.5)]
    whole = total(groups)
    assert (whole.cpu_hours, whole.gpu_hours, whole.tasks["finished"]) == (4.5, 1.0, 1)
    assert whole.tasks["preempted"] == 1


def test_an_outcome_at_the_windows_end_belongs_to_the_next_window() -> None:
    ended = [span(T0, T0 + HOUR)]
    assert tally(ended, T0, T0 + HOUR, T0 + HOUR)[0].tasks["finished"] == 0
    assert tally(ended, T0 + HOUR, T0 + 2 * HOUR, T0 + HOUR)[0].tasks["finished"] == 1


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.0, "0.000"), (0.0001, "<0.001"), (0.0005, "0.001"), (12.3456, "12.346")],
)
def test_the_cli_shows_hours_to_the_thousandth_and_a_little_as_a_little(
    value: float, shown: str
) -> None:
    from corral.cli.usage import hours

    assert hours(value) == shown
