"""``corral usage``: what each user or group used over a window of time (Slurm's ``sreport``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from corral.cli.context import InvalidInput, connect
from corral.cli.output import Column, console, print_json, table, when

if TYPE_CHECKING:
    from corral.spec.views import UsageRowView

OUTCOMES = ("finished", "failed", "killed", "lost", "preempted")
_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_instant(value: str, option: str, now: datetime) -> datetime:
    """``now``, a time ago (``90m``, ``24h``, ``7d``, ``2w``) or an ISO 8601 date or time
    (UTC unless it names a zone); ``InvalidInput`` naming ``option`` otherwise."""
    if value == "now":
        return now
    if (ago := _AGO.fullmatch(value)) is not None:
        return now - timedelta(seconds=float(ago[1]) * _UNITS[ago[2]])
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{option}: {value!r} is not a time: give now, a time ago (30m, 24h, 7d) "
            "or an ISO 8601 date or time"
        ) from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def hours(value: float) -> str:
    """Hours to the thousandth; a little less than that is said so, not shown as zero."""
    return "<0.001" if 0 < value < 0.0005 else f"{value:.3f}"


def _hours(header: str, attribute: str) -> Column[UsageRowView]:
    return Column(header, lambda r: hours(getattr(r, attribute)), "right")


def _outcome(outcome: str) -> Column[UsageRowView]:
    return Column(outcome.upper(), lambda r: str(r.tasks.get(outcome, 0)), "right")


def _columns(by: str) -> list[Column[UsageRowView]]:
    return [
        Column(by.upper(), lambda r: r.name or "-"),
        _hours("CPU-H", "cpu_hours"),
        _hours("MEM-GIB-H", "mem_gib_hours"),
        _hours("GPU-H", "gpu_hours"),
        *(_outcome(o) for o in OUTCOMES),
    ]


def usage(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option(help="Start of the window: now, a time ago (24h, 7d) or ISO 8601.")
    ] = "24h",
    until: Annotated[str, typer.Option(help="End of the window, as --since.")] = "now",
    by: Annotated[
        Literal["user", "group"], typer.Option(help="One row per user or per group.")
    ] = "user",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """What each user (or group) used in a window: cpu-hours, mem-GiB-hours, gpu-hours, and
    the tasks that ended in it by outcome. Running time is clipped to the window; a task
    still running counts until now."""
    now = datetime.now(UTC)
    start = parse_instant(since, "--since", now)
    end = parse_instant(until, "--until", now)
    if start >= end:
        raise InvalidInput("--since: the window must start before --until")
    with connect(ctx) as client:
        found = client.usage(start, end, by)
    if as_json:
        print_json(found)
        return
    console.print(f"from {when(found.since)} until {when(found.until)}")
    console.print(
        table([*found.rows, found.total.model_copy(update={"name": "TOTAL"})], _columns(by))
    )


def register(app: typer.Typer) -> None:
    """Add ``usage`` to the app."""
    app.command("usage")(usage)
