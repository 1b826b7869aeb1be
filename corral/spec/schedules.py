"""When a scheduled job fires: ISO 8601 repeating intervals and cron, as pure functions.
(What to run or skip when firings come due is ``corral.spec.firings``.)

Nothing here reads the clock: callers pass ``now`` and the *anchor* (the job's creation time),
which is where an ISO schedule without a start begins and before which cron never fires. Every
answer is computed directly from the schedule's start, never by stepping through the elapsed
periods, so a schedule that missed a million firings is decided as fast as one that missed none.

Cron firings carry ``index == -1``: cron has no count of firings, so there is nothing to number.
Cron follows cronsim (and Debian cron) across DST: a fixed-time job whose time is skipped runs
when the gap ends, and once on a repeated hour. Known cronsim limitation: where the clock shifts
by half an hour (Australia/Lord_Howe), a cron with a wildcard minute or hour can miss the firings
in the half hour after the change.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = ["MIN_PERIOD", "Firing", "Schedule", "parse_schedule"]

_US = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
_DAY_US = 86_400 * 10**6
_MONTH_US = 2_629_746 * 10**6  # the Gregorian mean month (365.2425 days / 12), exact in µs
_MAX_PERIOD_US = 10_000 * 12 * _MONTH_US  # longer than datetime's range: could never fire twice
# A shorter period would make the master fire (or skip) faster than it can record: refused.
MIN_PERIOD = timedelta(seconds=1)
_NUM = r"([0-9]+(?:[.,][0-9]+)?)"
_DURATION = re.compile(
    rf"P(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}W)?(?:{_NUM}D)?(?:T(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?",
    re.ASCII,
)
# The regex groups in order, with what one of each is worth: (months, days, microseconds).
_UNITS = (
    ("years", 12, 0, 0),
    ("months", 1, 0, 0),
    ("weeks", 0, 7, 0),
    ("days", 0, 1, 0),
    ("hours", 0, 0, 3_600 * 10**6),
    ("minutes", 0, 0, 60 * 10**6),
    ("seconds", 0, 0, 10**6),
)


@dataclass(frozen=True, slots=True)
class Firing:
    """One firing of a schedule."""

    index: int  # 0-based number of the firing in an ISO schedule; -1 for cron
    at: datetime  # aware, UTC


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule; build it with :func:`parse_schedule`."""

    text: str
    timezone: str
    zone: ZoneInfo = field(repr=False, compare=False)
    cron: str | None = None  # the five cron fields, or None for an ISO repeating interval
    count: int | None = None  # ISO: how many firings; None repeats forever
    start_wall: datetime | None = None  # ISO: naive wall-clock start in `zone`; None = anchor
    start_at: datetime | None = None  # ISO: the instant of firing 0 (UTC); None = anchor
    months: int = 0  # ISO period, calendar part: added in wall-clock time of `zone`
    days: int = 0
    micros: int = 0  # ISO period, time part: added as absolute time

    @property
    def anchored(self) -> bool:
        """Whether the firings count from the anchor (an ISO schedule without a start), so
        that defining the job anew moves them."""
        return self.cron is None and self.start_at is None

    def first_at_or_after(self, anchor: datetime, t: datetime) -> Firing | None:
        """The first firing at or after ``t``; None when the schedule is exhausted.

        ``anchor`` is the job's creation time: the start of an ISO schedule that names none,
        and the earliest instant a cron schedule fires.
        """
        anchor, t = _utc(anchor, "anchor"), _utc(t, "t")
        if self.cron is not None:
            return self._cron_next(max(anchor, t))
        wall, at0 = self._origin(anchor)
        k = self._first_index(wall, at0, t)
        at = self._at(wall, at0, k)
        if at is None or (self.count is not None and k >= self.count):
            return None
        return Firing(k, at)

    def latest_at_or_before(self, anchor: datetime, t: datetime) -> Firing | None:
        """The last firing at or before ``t``; None when none has happened yet."""
        anchor, t = _utc(anchor, "anchor"), _utc(t, "t")
        if self.cron is not None:
            return self._cron_prev(anchor, t)
        wall, at0 = self._origin(anchor)
        # The last firing <= t is the one before the first firing > t.
        k = self._first_index(wall, at0, t + _US) - 1
        if self.count is not None:
            k = min(k, self.count - 1)
        at = self._at(wall, at0, k) if k >= 0 else None
        return None if at is None else Firing(k, at)

    def _origin(self, anchor: datetime) -> tuple[datetime, datetime]:
        """Wall-clock time and instant of firing 0."""
        if self.start_wall is not None and self.start_at is not None:
            return self.start_wall, self.start_at
        return anchor.astimezone(self.zone).replace(tzinfo=None), anchor

    def _at(self, wall: datetime, at0: datetime, k: int) -> datetime | None:
        """Firing k, computed from the start each time; None past the end of datetime's range."""
        if k == 0:
            # Exactly the start, even when it is the second of two equal wall-clock times.
            return at0
        try:
            base = at0
            if self.months or self.days:
                year, month = divmod(wall.month - 1 + k * self.months, 12)
                year += wall.year
                if year > MAXYEAR:
                    return None
                # Jan 31 + 1 month is the last of February, not March 3.
                day = min(wall.day, calendar.monthrange(year, month + 1)[1])
                local = wall.replace(year=year, month=month + 1, day=day)
                base = _instant(local + timedelta(days=k * self.days), self.zone)
            return base + timedelta(microseconds=k * self.micros)
        except OverflowError:
            return None

    def _first_index(self, wall: datetime, at0: datetime, t: datetime) -> int:
        """The smallest k whose firing is at or after ``t`` (or past datetime's range)."""

        def reached(k: int) -> bool:
            at = self._at(wall, at0, k)
            return at is None or at >= t

        period_us = self.months * _MONTH_US + self.days * _DAY_US + self.micros
        k = max(0, ((t - at0) // _US) // period_us)
        # The estimate is exact for time-only periods; month lengths and DST put it off by at
        # most a period or two otherwise, so both loops take a few steps at most.
        while k > 0 and reached(k - 1):
            k -= 1
        while not reached(k):
            k += 1
        return k

    def _cron_next(self, t: datetime) -> Firing | None:
        assert self.cron is not None
        if t.microsecond:  # cron fires on whole seconds
            t = t.replace(microsecond=0) + _SECOND
        # CronSim yields firings strictly after its start, hence the second less.
        it = CronSim(self.cron, (t - _SECOND).astimezone(self.zone))
        # For fixed-time expressions CronSim steps through wall-clock time, so during a
        # fall-back hour it can yield instants before t; skip those (an hour's worth at most).
        for at in it:
            if at.astimezone(UTC) >= t:
                return Firing(-1, at.astimezone(UTC))
        return None  # CronSim gives up after 50 years without a firing

    def _cron_prev(self, anchor: datetime, t: datetime) -> Firing | None:
        assert self.cron is not None
        end = t.replace(microsecond=0) + _SECOND  # reverse CronSim yields instants before `end`
        local = end.astimezone(self.zone)
        # In the second pass of a repeated (fall-back) hour, firings of the first pass at later
        # wall-clock times are before t too: start that much later and skip what lies after t.
        first_pass, offset = local.replace(fold=0).utcoffset(), local.utcoffset()
        if first_pass is not None and offset is not None and first_pass > offset:
            local = (end + (first_pass - offset)).astimezone(self.zone)
        found = None
        for at in CronSim(self.cron, local, reverse=True):
            if at.astimezone(UTC) <= t:  # not so during a fall-back hour, as in _cron_next
                found = Firing(-1, at.astimezone(UTC))
                break
        # CronSim's backward search can skip firings where the clock shifts by half an hour
        # (Australia/Lord_Howe); step forward so both directions agree on the firings.
        while found is not None and (later := self._cron_next(found.at + _US)) is not None:
            if later.at > t:
                break
            found = later
        return found if found is not None and found.at >= anchor else None


def parse_schedule(text: str, timezone: str = "UTC") -> Schedule:
    """Parse ``R[n]/[start]/period`` (ISO 8601) or a five-field cron expression.

    Raises ValueError naming the bad part.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {timezone!r}") from None
    stripped = text.strip()
    if stripped.startswith("R"):  # no cron field starts with R
        return _parse_iso(text, timezone, zone)
    fields = stripped.split()
    if len(fields) != 5:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 repeating interval 'R[n]/[start]/period' "
            f"nor a cron expression of 5 fields (minute hour day month weekday)"
        )
    cron = " ".join(fields)
    try:
        # Parsing happens in the constructor; one step finds expressions that never fire.
        next(CronSim(cron, datetime(2001, 1, 1, tzinfo=zone)))
    except CronSimError as e:
        raise ValueError(f"cron expression {cron!r}: {e}") from None
    except StopIteration:
        raise ValueError(f"cron expression {cron!r} never fires") from None
    return Schedule(text, timezone, zone, cron=cron)


def _parse_iso(text: str, timezone: str, zone: ZoneInfo) -> Schedule:
    parts = text.strip().split("/")
    if len(parts) != 3 or not parts[0].startswith("R"):
        raise ValueError(f"{text!r} is not a repeating interval 'R[n]/[start]/period'")
    repeat, start, period = parts
    count = None
    if repeat != "R":
        if not re.fullmatch(r"[0-9]{1,18}", repeat[1:], re.ASCII):
            raise ValueError(f"repetitions {repeat!r} must be 'R' or 'R' and a whole number >= 0")
        count = int(repeat[1:])
    months, days, micros = _parse_period(period)
    wall = at = None
    if start:
        wall, at = _parse_start(start, zone)
    return Schedule(text, timezone, zone, None, count, wall, at, months, days, micros)


def _parse_start(text: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Wall-clock time in ``zone`` and instant of a start; without an offset it is in ``zone``."""
    try:
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            return dt, _instant(dt, zone)
        at = dt.astimezone(UTC)
        return at.astimezone(zone).replace(tzinfo=None), at
    except ValueError:
        raise ValueError(
            f"start {text!r} is not an ISO 8601 date-time like 2026-01-31T02:30:00Z"
        ) from None
    except OverflowError:
        raise ValueError(f"start {text!r} is out of range") from None


def _parse_period(text: str) -> tuple[int, int, int]:
    """(months, days, microseconds) of an ISO 8601 duration ``PnYnMnWnDTnHnMnS``."""
    if text.startswith(("-", "P-")):
        raise ValueError(f"period {text!r}: period must be longer than zero")
    match = _DURATION.fullmatch(text)
    if match is None or text.endswith(("P", "T")):
        raise ValueError(f"period {text!r} is not an ISO 8601 duration like PT1H, P1D or P1M2DT3H")
    given = [
        (unit, value)
        for unit, value in zip(_UNITS, match.groups(), strict=True)
        if value is not None
    ]
    months = days = 0
    micros = Decimal(0)
    for i, ((name, in_months, in_days, in_us), value) in enumerate(given):
        if len(value) > 30:
            raise ValueError(f"period {text!r}: the number of {name} is too large")
        if not value.isdigit():
            if in_us == 0:
                raise ValueError(f"period {text!r}: only hours, minutes or seconds take a fraction")
            if i != len(given) - 1:
                raise ValueError(f"period {text!r}: only the last (smallest) unit takes a fraction")
            micros += Decimal(value.replace(",", ".")) * in_us
        else:
            months += int(value) * in_months
            days += int(value) * in_days
            micros += int(value) * in_us
    us = int(micros.to_integral_value())
    if months == days == us == 0:
        raise ValueError(f"period {text!r}: period must be longer than zero")
    if months == days == 0 and us < MIN_PERIOD // _US:
        raise ValueError(f"period {text!r} is shorter than the minimum of 1 second (PT1S)")
    if months * _MONTH_US + days * _DAY_US + us > _MAX_PERIOD_US:
        raise ValueError(f"period {text!r} is longer than 10,000 years")
    return months, days, us


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant of a wall-clock time in ``zone``, as UTC.

    fold=0 resolves an ambiguous time (fall back) to its first occurrence, and shifts a time
    that does not exist (spring forward) forward by the gap: 02:30 becomes 03:30 summer time.
    """
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _utc(dt: datetime, name: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {dt.isoformat()}")
    return dt.astimezone(UTC)
