"""Firings (``corral.spec.firings``): what runs and what is skipped, and why, when firings come
due; which firing is due when a job is defined; the upcoming firings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from corral.spec.firings import Decision, Skip, SkipKind, arm, decide, upcoming
from corral.spec.schedules import Firing, Schedule, parse_schedule

US = timedelta(microseconds=1)
ANCHOR = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DAY = "R/2026-01-01T09:00:00Z/P1D"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def firing(s: Schedule, when: str) -> Firing:
    f = s.first_at_or_after(ANCHOR, utc(when))
    assert f is not None
    return f


# --- decide


def test_an_on_time_firing_runs() -> None:
    s = parse_schedule(DAY)
    d = decide(s, ANCHOR, firing(s, "2026-01-05T09:00:00Z"), utc("2026-01-05T09:00:05Z"))
    assert d.run == Firing(4, utc("2026-01-05T09:00:00Z"))
    assert d.skipped == ()
    assert d.next_due == Firing(5, utc("2026-01-06T09:00:00Z"))


def test_after_three_days_down_run_once_runs_the_latest_and_skips_the_rest_as_one_span() -> None:
    s = parse_schedule(DAY)
    d = decide(s, ANCHOR, firing(s, "2026-01-05T09:00:00Z"), utc("2026-01-07T12:00:00Z"))
    assert d.run == Firing(6, utc("2026-01-07T09:00:00Z"))
    [skip] = d.skipped
    assert (skip.kind, skip.first.index, skip.last.index, skip.count) == (
        SkipKind.SUPERSEDED,
        4,
        5,
        2,
    )
    assert skip.reason == "missed; the latest firing, 2026-01-07T09:00:00+00:00, ran once instead"
    assert d.next_due == Firing(7, utc("2026-01-08T09:00:00Z"))


def test_with_missed_skip_firings_due_while_no_master_ran_are_all_skipped() -> None:
    s = parse_schedule(DAY)
    due = firing(s, "2026-01-05T09:00:00Z")
    up = utc("2026-01-07T11:59:50Z")
    d = decide(s, ANCHOR, due, utc("2026-01-07T12:00:00Z"), missed="skip", up_since=up)
    assert d.run is None
    [skip] = d.skipped
    assert (skip.kind, skip.first.index, skip.last.index, skip.count) == (SkipKind.MISSED, 4, 6, 3)
    assert "missed while no master ran" in skip.reason
    assert d.next_due == Firing(7, utc("2026-01-08T09:00:00Z"))


def test_with_missed_skip_a_firing_missed_by_a_few_seconds_is_skipped_too() -> None:
    # The README's promise: missed: skip drops what fell due while the master was down,
    # however little it was missed by.
    s = parse_schedule(DAY)
    due = firing(s, "2026-01-05T09:00:00Z")
    up = due.at + timedelta(seconds=3)
    d = decide(s, ANCHOR, due, up + timedelta(seconds=1), missed="skip", up_since=up)
    assert d.run is None and d.skipped[0].kind is SkipKind.MISSED


def test_with_missed_skip_a_firing_due_while_the_master_runs_runs_even_if_handled_late() -> None:
    s = parse_schedule(DAY)
    due = firing(s, "2026-01-05T09:00:00Z")
    up = due.at - timedelta(hours=1)
    d = decide(s, ANCHOR, due, due.at + timedelta(seconds=2), missed="skip", up_since=up)
    assert d.run == due and d.skipped == ()


def test_with_missed_skip_a_firing_before_the_job_existed_is_not_missed() -> None:
    # The job was defined after the master started: its first firing was due at definition.
    s = parse_schedule("R1/2026-01-05T09:00:00Z/PT10M")
    anchor = utc("2026-01-05T09:00:05Z")
    due = Firing(0, utc("2026-01-05T09:00:00Z"))
    d = decide(s, anchor, due, anchor, missed="skip", up_since=anchor + timedelta(seconds=1))
    assert d.run == due


@pytest.mark.parametrize(
    ("late", "epsilon", "runs", "reason"),
    [
        (90, 60, False, "late by 90s, more than epsilon 60s"),
        (30, 60, True, None),
        (60, 60, True, None),
        (23 * 3600, None, True, None),
    ],
    ids=repr,
)
def test_a_late_firing_runs_only_within_epsilon(
    late: int, epsilon: float | None, runs: bool, reason: str | None
) -> None:
    s = parse_schedule(DAY)
    due = firing(s, "2026-01-05T09:00:00Z")
    d = decide(s, ANCHOR, due, due.at + timedelta(seconds=late), epsilon=epsilon)
    assert d.run == (due if runs else None)
    expected = () if reason is None else (Skip(SkipKind.LATE, due, due, 1, reason),)
    assert d.skipped == expected


def test_a_million_missed_periods_are_decided_directly_and_counted_in_one_span() -> None:
    s = parse_schedule("R//PT1S")
    d = decide(s, ANCHOR, Firing(0, ANCHOR), ANCHOR + timedelta(seconds=10**6, milliseconds=5))
    assert d.run == Firing(10**6, ANCHOR + timedelta(seconds=10**6))
    [skip] = d.skipped
    assert (skip.first.index, skip.last.index, skip.count) == (0, 10**6 - 1, 10**6)
    assert d.next_due == Firing(10**6 + 1, ANCHOR + timedelta(seconds=10**6 + 1))


def test_a_hundred_billion_late_periods_are_decided_too() -> None:
    # Looping over the periods would take hours: this only passes when nothing iterates.
    s = parse_schedule("R//PT1S")
    now = ANCHOR + timedelta(seconds=10**11, milliseconds=500)
    d = decide(s, ANCHOR, Firing(0, ANCHOR), now, epsilon=0.1)
    assert d.run is None
    assert d.skipped[0].count == 10**11 + 1


def test_missed_cron_firings_are_one_span_without_a_count() -> None:
    s = parse_schedule("* * * * *")
    due = firing(s, "2026-01-02T00:00:00Z")
    d = decide(s, ANCHOR, due, utc("2026-01-03T00:00:30Z"))
    assert d.run == Firing(-1, utc("2026-01-03T00:00:00Z"))
    [skip] = d.skipped
    assert (skip.first, skip.last.at, skip.count) == (due, utc("2026-01-02T23:59:00Z"), None)


def test_an_exhausted_schedule_has_no_next_firing() -> None:
    s = parse_schedule("R3/2026-01-05T09:00:00Z/P1D")
    d = decide(s, ANCHOR, firing(s, "2026-01-07T09:00:00Z"), utc("2026-02-01T00:00:00Z"))
    assert d.run == Firing(2, utc("2026-01-07T09:00:00Z"))
    assert d.next_due is None


def test_a_firing_not_yet_due_decides_nothing() -> None:
    s = parse_schedule(DAY)
    due = firing(s, "2026-01-05T09:00:00Z")
    assert decide(s, ANCHOR, due, due.at - US) == Decision(None, (), due)


def test_an_unknown_missed_policy_is_rejected() -> None:
    s = parse_schedule(DAY)
    with pytest.raises(ValueError, match="missed must be 'run-once' or 'skip'"):
        decide(s, ANCHOR, firing(s, "2026-01-05T09:00:00Z"), ANCHOR, missed="burst")


def test_spans_of_one_kind_join_into_one_with_the_counts_added() -> None:
    a = Skip(SkipKind.BUSY, Firing(3, ANCHOR), Firing(4, ANCHOR + US), 2, "busy")
    b = Skip(SkipKind.BUSY, Firing(5, ANCHOR + 2 * US), Firing(5, ANCHOR + 2 * US), 1, "still")
    assert a.then(b) == Skip(SkipKind.BUSY, a.first, b.last, 3, "still")


# --- arm: the firing due when a job is defined


@pytest.mark.parametrize(
    ("ago", "epsilon", "due_index"),
    [(5, None, 0), (59, None, 0), (60, None, 0), (59, 30, None), (300, 600, 0)],
    ids=repr,
)
def test_a_start_in_the_past_is_due_when_within_epsilon(
    ago: int, epsilon: float | None, due_index: int | None
) -> None:
    s = parse_schedule("R1/2026-01-05T09:00:00Z/PT10M")
    anchor = utc("2026-01-05T09:00:00Z") + timedelta(seconds=ago)
    d = arm(s, anchor, epsilon=epsilon)
    assert d.run is None
    if due_index is None:
        assert d.next_due is None
        [skip] = d.skipped
        assert skip.kind is SkipKind.LATE and skip.first.index == 0 and skip.count == 1
        assert skip.reason == f"due {ago}s before the job was defined, more than epsilon 30s"
    else:
        assert d.next_due == Firing(due_index, utc("2026-01-05T09:00:00Z"))
        assert d.skipped == ()


def test_a_start_long_past_skips_only_the_latest_past_firing_and_waits_for_the_next() -> None:
    s = parse_schedule("R/2014-01-01T02:00:00Z/P1D")
    anchor = utc("2026-01-05T09:00:00Z")
    d = arm(s, anchor)
    assert d.next_due is not None and d.next_due.at == utc("2026-01-06T02:00:00Z")
    [skip] = d.skipped
    assert skip.first.at == utc("2026-01-05T02:00:00Z") and skip.count == 1


def test_an_empty_start_is_due_at_once_and_a_future_start_at_its_time() -> None:
    assert arm(parse_schedule("R1//PT10M"), ANCHOR) == Decision(None, (), Firing(0, ANCHOR))
    s = parse_schedule("R/2027-01-01T00:00:00Z/PT1H")
    assert arm(s, ANCHOR).next_due == Firing(0, utc("2027-01-01T00:00:00Z"))


# --- upcoming


def test_the_upcoming_firings_follow_the_start_and_end_with_the_schedule() -> None:
    s = parse_schedule("R3/2026-03-28T02:30/P1D", "Europe/Berlin")
    first = s.first_at_or_after(ANCHOR, ANCHOR)
    got = [f.at.isoformat() for f in upcoming(s, ANCHOR, first, 5)]
    # 02:30 does not exist on 29 March in Berlin: that firing is at 03:30 summer time.
    assert got == [
        "2026-03-28T01:30:00+00:00",
        "2026-03-29T01:30:00+00:00",
        "2026-03-30T00:30:00+00:00",
    ]
    assert upcoming(s, ANCHOR, first, 2) == upcoming(s, ANCHOR, first, 3)[:2]
    assert upcoming(s, ANCHOR, None, 5) == []
