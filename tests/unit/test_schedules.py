"""Schedules (``corral.spec.schedules``): parsing ISO 8601 repeating intervals and cron, and
finding firings across month ends and DST changes."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from corral.spec.schedules import Firing, Schedule, parse_schedule

US = timedelta(microseconds=1)
ANCHOR = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def upcoming(s: Schedule, t: datetime, n: int = 10, anchor: datetime = ANCHOR) -> list[str]:
    """The next ``n`` firings from ``t``, as ISO strings in the schedule's time zone."""
    out: list[str] = []
    f = s.first_at_or_after(anchor, t)
    while f is not None and len(out) < n:
        out.append(f.at.astimezone(ZoneInfo(s.timezone)).isoformat())
        f = s.first_at_or_after(anchor, f.at + US)
    return out


# --- parsing


@pytest.mark.parametrize(
    ("text", "zone", "message"),
    [
        ("R-1/2026-01-01T00:00:00Z/P1D", "UTC", "repetitions 'R-1'"),
        ("Rx//P1D", "UTC", "repetitions 'Rx'"),
        ("R//PT0S", "UTC", "period must be longer than zero"),
        ("R//P0D", "UTC", "period must be longer than zero"),
        ("R//-P1D", "UTC", "period must be longer than zero"),
        ("R//PT0.0000001S", "UTC", "period must be longer than zero"),
        ("R//PT0.0001S", "UTC", "period 'PT0.0001S' is shorter than the minimum of 1 second"),
        ("R//PT0.999999S", "UTC", "shorter than the minimum of 1 second (PT1S)"),
        ("R//P1.5D", "UTC", "only hours, minutes or seconds take a fraction"),
        ("R//PT1.5H30M", "UTC", "only the last (smallest) unit takes a fraction"),
        ("R//P1X", "UTC", "period 'P1X' is not an ISO 8601 duration"),
        ("R//P", "UTC", "period 'P' is not an ISO 8601 duration"),
        ("R//PT", "UTC", "period 'PT' is not an ISO 8601 duration"),
        ("R//P1DT", "UTC", "period 'P1DT' is not an ISO 8601 duration"),
        ("R//P1H", "UTC", "period 'P1H' is not an ISO 8601 duration"),
        ("R//P20000Y", "UTC", "longer than 10,000 years"),
        ("R/yesterday/P1D", "UTC", "start 'yesterday' is not an ISO 8601 date-time"),
        ("R/2026-02-30T00:00:00/P1D", "UTC", "start '2026-02-30T00:00:00'"),
        ("R/P1D", "UTC", "is not a repeating interval"),
        ("R5//P1D/PT1H", "UTC", "is not a repeating interval"),
        ("5//P1D", "UTC", "neither an ISO 8601 repeating interval"),
        ("", "UTC", "neither an ISO 8601 repeating interval"),
        ("* * *", "UTC", "nor a cron expression of 5 fields"),
        ("0 * * * * *", "UTC", "nor a cron expression of 5 fields"),
        ("61 * * * *", "UTC", "cron expression '61 * * * *': Bad minute"),
        ("0 0 30 2 *", "UTC", "cron expression '0 0 30 2 *': Bad day-of-month"),
        ("R//P1D", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("0 2 * * *", "../etc/passwd", "unknown time zone '../etc/passwd'"),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_a_bad_schedule_is_rejected_naming_the_bad_part(text: str, zone: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_schedule(text, zone)
    assert message in str(e.value)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("R//PT10M", {"count": None, "months": 0, "days": 0, "micros": 600 * 10**6}),
        ("R0//P1D", {"count": 0, "days": 1}),
        ("R2//P1Y2M3W4DT5H6M7.5S", {"months": 14, "days": 25, "micros": 18_367_500_000}),
        ("R//PT1,5S", {"micros": 1_500_000}),
        (" 30 2  * * * ", {"cron": "30 2 * * *", "count": None}),
    ],
    ids=repr,
)
def test_a_schedule_parses_into_its_parts(text: str, fields: dict[str, object]) -> None:
    s = parse_schedule(text)
    assert s.text == text and s.timezone == "UTC"
    assert {name: getattr(s, name) for name in fields} == fields


# --- ISO 8601 firings


@pytest.mark.parametrize(
    ("text", "zone", "t", "expected"),
    [
        ("R0//PT10M", "UTC", "2026-01-01T00:00:00Z", []),
        ("R1//PT10M", "UTC", "2026-01-01T00:00:00Z", ["2026-01-01T12:00:00+00:00"]),
        (
            "R3/2026-01-31T00:00:00Z/P1M",
            "UTC",
            "2026-01-01T00:00:00Z",
            ["2026-01-31T00:00:00+00:00", "2026-02-28T00:00:00+00:00", "2026-03-31T00:00:00+00:00"],
        ),
        (
            "R4/2028-01-31T00:00:00Z/P1M",
            "UTC",
            "2026-01-01T00:00:00Z",
            [f"2028-{md}T00:00:00+00:00" for md in ("01-31", "02-29", "03-31", "04-30")],
        ),
        (
            "R5/2024-02-29T12:00:00Z/P1Y",
            "UTC",
            "2024-01-01T00:00:00Z",
            [
                f"20{y}-02-{d}T12:00:00+00:00"
                for y, d in [(24, 29), (25, 28), (26, 28), (27, 28), (28, 29)]
            ],
        ),
        (
            "R3/2026-01-01T00:00:00Z/P1DT12H",
            "UTC",
            "2025-01-01T00:00:00Z",
            ["2026-01-01T00:00:00+00:00", "2026-01-02T12:00:00+00:00", "2026-01-04T00:00:00+00:00"],
        ),
        (
            "R3/2026-01-01T00:00:00Z/PT1.5S",
            "UTC",
            "2026-01-01T00:00:00.2Z",
            ["2026-01-01T00:00:01.500000+00:00", "2026-01-01T00:00:03+00:00"],
        ),
        (
            "R/2026-03-27T02:30/P1D",
            "Europe/Berlin",
            "2026-03-27T00:00:00Z",
            [
                "2026-03-27T02:30:00+01:00",
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:30:00+02:00",  # 02:30 does not exist that day: once, after the gap
                "2026-03-30T02:30:00+02:00",
            ],
        ),
        (
            "R/2026-10-24T02:30/P1D",
            "Europe/Berlin",
            "2026-10-24T00:00:00Z",
            [
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",  # 02:30 happens twice that day: once, the first
                "2026-10-26T02:30:00+01:00",
            ],
        ),
        (
            "R/2026-03-07T02:30/P1D",
            "America/New_York",
            "2026-03-07T00:00:00Z",
            ["2026-03-07T02:30:00-05:00", "2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
        (
            "R/2026-10-31T01:30/P1D",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            ["2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        (
            "R/2026-03-22T02:30/P1W",
            "Europe/Berlin",
            "2026-03-01T00:00:00Z",
            ["2026-03-22T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-04-05T02:30:00+02:00"],
        ),
        (
            "R/2026-03-28T01:30:00Z/P1D",  # an absolute start; days still follow Berlin's clock
            "Europe/Berlin",
            "2026-03-28T00:00:00Z",
            ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_an_iso_schedule_fires_on_its_calendar(
    text: str, zone: str, t: str, expected: list[str]
) -> None:
    assert upcoming(parse_schedule(text, zone), utc(t), n=len(expected) or 1) == expected


@pytest.mark.parametrize(
    ("day", "zone", "hours"),
    [
        ("2026-03-29", "Europe/Berlin", 23),
        ("2026-10-25", "Europe/Berlin", 25),
        ("2026-03-08", "America/New_York", 23),
        ("2026-11-01", "America/New_York", 25),
    ],
    ids=repr,
)
def test_hourly_is_absolute_time_so_a_dst_day_has_one_firing_per_real_hour(
    day: str, zone: str, hours: int
) -> None:
    s = parse_schedule("R/2026-01-01T00:00:00Z/PT1H", zone)
    tz = ZoneInfo(zone)
    begin = datetime.fromisoformat(day).replace(tzinfo=tz)
    end = (begin + timedelta(days=1)).replace(tzinfo=tz)  # next local midnight
    first, last = s.first_at_or_after(ANCHOR, begin), s.latest_at_or_before(ANCHOR, end - US)
    assert first is not None and last is not None
    assert last.index - first.index + 1 == hours
    assert last.at - first.at == timedelta(hours=hours - 1)


def test_an_empty_start_means_the_anchor() -> None:
    s = parse_schedule("R//P1D", "Europe/Berlin")
    anchor = utc("2026-03-28T01:30:00Z")  # 02:30 in Berlin
    assert upcoming(s, anchor, 3, anchor=anchor) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_firing_k_is_counted_from_the_start_not_from_the_previous_firing() -> None:
    s = parse_schedule("R/2026-01-31T00:00:00Z/P1M")
    f = s.first_at_or_after(ANCHOR, utc("2036-03-01T00:00:00Z"))
    assert f == Firing(122, utc("2036-03-31T00:00:00Z"))


# --- first_at_or_after and latest_at_or_before

DAILY = "R3/2026-01-05T09:00:00Z/P1D"


@pytest.mark.parametrize(
    ("text", "t", "first", "latest"),
    [
        (DAILY, "2026-01-05T09:00:00Z", (0, "2026-01-05T09:00:00Z"), (0, "2026-01-05T09:00:00Z")),
        (DAILY, "2026-01-06T08:59:59Z", (1, "2026-01-06T09:00:00Z"), (0, "2026-01-05T09:00:00Z")),
        (
            DAILY,
            "2026-01-06T09:00:00.000001Z",
            (2, "2026-01-07T09:00:00Z"),
            (1, "2026-01-06T09:00:00Z"),
        ),
        (DAILY, "2026-01-04T00:00:00Z", (0, "2026-01-05T09:00:00Z"), None),
        (DAILY, "2026-01-07T09:00:01Z", None, (2, "2026-01-07T09:00:00Z")),
        (
            "0 9 * * *",
            "2026-01-05T09:00:00Z",
            (-1, "2026-01-05T09:00:00Z"),
            (-1, "2026-01-05T09:00:00Z"),
        ),
        (
            "0 9 * * *",
            "2026-01-05T09:00:00.5Z",
            (-1, "2026-01-06T09:00:00Z"),
            (-1, "2026-01-05T09:00:00Z"),
        ),
        (
            "0 9 * * *",
            "2026-01-05T08:59:59.9Z",
            (-1, "2026-01-05T09:00:00Z"),
            (-1, "2026-01-04T09:00:00Z"),
        ),
    ],
    ids=repr,
)
def test_the_firings_around_an_instant_include_one_exactly_at_it(
    text: str, t: str, first: tuple[int, str] | None, latest: tuple[int, str] | None
) -> None:
    s = parse_schedule(text)
    expect_first = first and Firing(first[0], utc(first[1]))
    expect_latest = latest and Firing(latest[0], utc(latest[1]))
    assert s.first_at_or_after(ANCHOR, utc(t)) == expect_first
    assert s.latest_at_or_before(ANCHOR, utc(t)) == expect_latest


def test_a_naive_datetime_is_rejected() -> None:
    with pytest.raises(ValueError, match="t must be a timezone-aware datetime"):
        parse_schedule(DAILY).first_at_or_after(ANCHOR, datetime(2026, 1, 1))


# --- cron


@pytest.mark.parametrize(
    ("text", "zone", "t", "expected"),
    [
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-27T00:00:00Z",
            [
                "2026-03-27T02:30:00+01:00",
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",  # cronsim, like Debian cron, runs at the gap's end
                "2026-03-30T02:30:00+02:00",
            ],
        ),
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T00:00:00Z",
            ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            ["2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        (
            "0-59 1 * * *",  # in the repeated hour (EST) no firing lies before t
            "America/New_York",
            "2026-11-01T06:30:00Z",
            ["2026-11-02T01:00:00-05:00", "2026-11-02T01:01:00-05:00"],
        ),
        (
            "*/20 * * * *",
            "UTC",
            "2026-01-01T12:05:00Z",
            ["2026-01-01T12:20:00+00:00", "2026-01-01T12:40:00+00:00"],
        ),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_a_cron_schedule_fires_once_on_dst_days(
    text: str, zone: str, t: str, expected: list[str]
) -> None:
    assert upcoming(parse_schedule(text, zone), utc(t), n=len(expected)) == expected


def test_cron_fires_at_the_earliest_at_the_anchor() -> None:
    s = parse_schedule("0 * * * *")
    assert s.latest_at_or_before(ANCHOR, ANCHOR - US) is None
    assert s.first_at_or_after(ANCHOR, utc("2025-06-01T00:00:00Z")) == Firing(-1, ANCHOR)


def test_a_cron_firing_in_the_repeated_hour_is_the_latest_before_t() -> None:
    s = parse_schedule("0-59 1 * * *", "America/New_York")
    latest = s.latest_at_or_before(ANCHOR, utc("2026-11-01T06:30:00Z"))  # 01:30 EST, 2nd time
    assert latest == Firing(-1, utc("2026-11-01T05:59:00Z"))  # 01:59 EDT, the 1st time


# --- properties

PIECES = st.sampled_from(
    ["R", "R0", "R5", "R-1", "R1.5", "", "2026-01-31T00:00:00Z", "2026-02-30T00:00", "P1D",
     "PT0S", "P0.5D", "PT1.5H30M", "PT1,5S", "P", "PT", "-P1D", "P99999999999999Y", "P1W",
     "9999-12-31T23:59:59-05:00", "0001-01-01T00:00+05:00", "*", "*/5", "61", "1-5", "L", "MON"]
)  # fmt: skip
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


@given(
    st.one_of(
        st.text(),
        st.lists(PIECES, max_size=4).map("/".join),
        st.lists(PIECES, max_size=6).map(" ".join),
    ),
    st.sampled_from([*ZONES, "Nowhere/Else", ""]),
)
def test_parsing_any_text_raises_nothing_but_value_error(text: str, zone: str) -> None:
    try:
        parse_schedule(text, zone)
    except ValueError:
        pass


@dataclass
class Case:
    """A random ISO schedule, by its parts, with its firings computed the slow way."""

    text: str
    zone: str
    anchor: datetime
    firings: list[datetime]  # all of them when the count is finite, else the first 40
    complete: bool


@st.composite
def iso_cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone)
    y, mo, w, d, h, mi, s = draw(
        st.tuples(*(st.integers(0, top) for top in (1, 13, 2, 40, 30, 90, 90))).filter(any)
    )
    count = draw(st.none() | st.integers(0, 30))
    wall = draw(st.datetimes(datetime(2024, 1, 1), datetime(2028, 12, 31)))
    kind = draw(st.sampled_from(["local", "utc", "anchor"]))
    anchor = wall.replace(tzinfo=tz).astimezone(UTC)
    start, at0 = wall.isoformat(), anchor  # a start without an offset is in the zone
    if kind == "utc":
        at0 = wall.replace(tzinfo=UTC)
        start, wall = at0.isoformat(), at0.astimezone(tz).replace(tzinfo=None)
    elif kind == "anchor":
        start = ""
    period = f"P{y}Y{mo}M{w}W{d}DT{h}H{mi}M{s}S"
    text = f"R{'' if count is None else count}/{start}/{period}"
    months, days, step = 12 * y + mo, 7 * w + d, timedelta(hours=h, minutes=mi, seconds=s)
    n = 40 if count is None else count
    firings = [at0]
    year, month = wall.year, wall.month
    for k in range(1, n):
        for _ in range(months):  # one month at a time: nothing shared with the code under test
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        day = min(wall.day, calendar.monthrange(year, month)[1])
        local = wall.replace(year=year, month=month, day=day) + k * timedelta(days=days)
        base = local.replace(tzinfo=tz).astimezone(UTC) if months or days else at0
        firings.append(base + k * step)
    return Case(text, zone, anchor, firings[:n], count is not None)


@given(iso_cases(), st.floats(-0.1, 1.1))
def test_the_first_and_latest_firing_around_t_match_a_slow_reference(
    case: Case, where: float
) -> None:
    s = parse_schedule(case.text, case.zone)
    assert all(a < b for a, b in zip(case.firings, case.firings[1:], strict=False))
    assume(case.firings)
    lo, hi = case.firings[0], case.firings[-1]
    t = lo + (hi - lo + timedelta(days=1)) * where - timedelta(hours=12)
    assume(case.complete or t <= hi)
    after = [Firing(k, at) for k, at in enumerate(case.firings) if at >= t]
    before = [Firing(k, at) for k, at in enumerate(case.firings) if at <= t]
    assert s.first_at_or_after(case.anchor, t) == (after[0] if after else None)
    assert s.latest_at_or_before(case.anchor, t) == (before[-1] if before else None)


@given(iso_cases())
def test_firings_are_strictly_increasing_and_numbered_in_order(case: Case) -> None:
    s = parse_schedule(case.text, case.zone)
    f = s.first_at_or_after(case.anchor, case.anchor - timedelta(days=4000))
    seen: list[Firing] = []
    while f is not None and len(seen) < len(case.firings):
        seen.append(f)
        nxt = s.first_at_or_after(case.anchor, f.at + US)
        assert nxt is None or (nxt.at > f.at and nxt.index == f.index + 1)
        f = nxt
    assert [x.at for x in seen] == case.firings


@given(
    st.tuples(
        st.sampled_from(["0", "30", "*/15", "0-59", "5,35"]),
        st.sampled_from(["*", "1", "2", "0-3", "*/6"]),
        st.sampled_from(["*", "1,15"]),
        st.sampled_from(["*", "3,10,11"]),
        st.sampled_from(["*", "0", "1-5"]),
    ).map(" ".join),
    st.sampled_from(ZONES),
    st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC)),
)
def test_cron_firings_around_t_agree_with_each_other(expr: str, zone: str, t: datetime) -> None:
    s = parse_schedule(expr, zone)
    first, latest = s.first_at_or_after(ANCHOR, t), s.latest_at_or_before(ANCHOR, t)
    assert first is not None and first.at >= t
    assert s.latest_at_or_before(ANCHOR, first.at) == first
    if latest is not None:
        assert latest.at <= t
        assert s.first_at_or_after(ANCHOR, latest.at) == latest
        if latest != first:  # nothing lies strictly between the two
            assert s.first_at_or_after(ANCHOR, latest.at + US) == first


def test_the_latest_cron_firing_agrees_with_the_forward_search_on_a_half_hour_dst_day() -> None:
    s = parse_schedule("*/15 1 * * *", "Australia/Lord_Howe")
    latest = s.latest_at_or_before(ANCHOR, utc("2026-10-04T00:00:00Z"))  # 02:00 -> 02:30 that day
    assert latest == Firing(-1, utc("2026-10-04T01:45:00+10:30"))


@pytest.mark.xfail(strict=True, reason="cronsim steps hours in real time: half-hour DST shifts")
def test_cron_fires_at_every_time_on_a_half_hour_dst_change() -> None:
    s = parse_schedule("*/15 2 * * *", "Australia/Lord_Howe")
    assert upcoming(s, utc("2026-04-04T12:00:00Z"), 2) == [
        "2026-04-05T02:00:00+10:30",
        "2026-04-05T02:15:00+10:30",
    ]
