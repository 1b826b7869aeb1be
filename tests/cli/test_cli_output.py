"""Pure rendering helpers: durations, times, counts, latest attempts, error messages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from corral.cli.output import ago, counts, duration, when
from corral.cli.views import latest_attempts
from corral.client import describe_errors
from corral.spec.states import TaskState
from corral.spec.views import ResourcesView, TaskView
from tests.cli.samples import T0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0.0s"), (4.24, "4.2s"), (59.9, "59.9s"), (185, "3m05s"), (7620, "2h07m")],
)
def test_a_duration_is_short_and_exact_enough(seconds: float, text: str) -> None:
    assert duration(T0, T0 + timedelta(seconds=seconds)) == text


def test_a_duration_without_an_end_runs_to_now_and_without_a_start_is_empty() -> None:
    assert duration(T0, None, now=T0 + timedelta(seconds=2)) == "2.0s"
    assert duration(None, T0) == ""


def test_times_of_today_leave_out_the_date() -> None:
    assert len(when(T0, now=T0)) == len("03:04:05")
    assert len(when(T0, now=T0 + timedelta(days=3))) == len("2025-01-02 03:04:05")
    assert when(None) == ""


@pytest.mark.parametrize(("seconds", "text"), [(3, "3s ago"), (300, "5m ago"), (36000, "10h ago")])
def test_ago_is_coarse(seconds: float, text: str) -> None:
    assert ago(T0, now=T0 + timedelta(seconds=seconds)) == text


def test_counts_list_non_zero_states_in_lifecycle_order() -> None:
    text = counts({TaskState.FAILED: 1, TaskState.FINISHED: 3, TaskState.PENDING: 0}, 4)
    assert text.plain == "3 FINISHED, 1 FAILED of 4"
    assert counts({}, 2).plain == "0 of 2"


def task(slot: int, attempt: int, state: TaskState) -> TaskView:
    """Task ``j.1.<slot>.<attempt>``."""
    return TaskView(
        id=f"j.1.{slot}.{attempt}",
        job="j",
        run=1,
        slot=slot,
        index=slot,
        attempt=attempt,
        state=state,
        resources=ResourcesView(cpus=1, mem=128, disk=0),
        created_at=T0,
    )


def test_only_the_latest_attempt_of_each_slot_counts() -> None:
    tasks = [
        task(1, 0, TaskState.FAILED),
        task(0, 0, TaskState.FAILED),
        task(1, 1, TaskState.FINISHED),
        task(0, 1, TaskState.FAILED),
    ]
    assert [t.id for t in latest_attempts(tasks)] == ["j.1.0.1", "j.1.1.1"]


def test_error_items_without_a_location_or_outside_the_body_keep_what_they_have() -> None:
    items = [{"loc": [], "msg": "bad"}, {"loc": ["query", "limit"], "msg": "too big"}]
    assert describe_errors(items) == "bad; query.limit: too big"
    assert describe_errors([]) == "invalid input"
