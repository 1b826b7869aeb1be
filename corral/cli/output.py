"""Rendering shared by all commands: tables of views, ``--json``, states in colour, times.

User data (reasons, commands, names) is wrapped in ``Text`` so that brackets in it are never
read as rich markup.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from corral.spec.states import AgentState, RunState, TaskState

T = TypeVar("T")
Cell = str | Text

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_STYLES: Mapping[str, str] = {
    TaskState.PENDING: "dim",
    TaskState.STAGING: "cyan",
    TaskState.STARTING: "cyan",
    TaskState.RUNNING: "blue",
    TaskState.FINISHED: "green",
    TaskState.FAILED: "red",
    TaskState.KILLED: "yellow",
    TaskState.LOST: "red",
    TaskState.ERROR: "red",
    RunState.SUCCEEDED: "green",
    AgentState.ACTIVE: "green",
    AgentState.DRAINING: "yellow",
    AgentState.DISCONNECTED: "yellow",
}


@dataclass(frozen=True, slots=True)
class Column(Generic[T]):
    """One table column: its header and how to get the cell from a row's item."""

    header: str
    cell: Callable[[T], Cell]
    justify: Literal["left", "right"] = "left"
    # Only free text may wrap when the table is too wide: ids, names, states and times are
    # copied and grepped, so they keep their full width on one line.
    wrap: bool = False


def print_json(value: Any) -> None:
    """Print views or rows (or lists/dicts of them) as indented JSON on stdout, without
    colour."""
    typer.echo(json.dumps(value, indent=2, default=_jsonable))


def _jsonable(value: Any) -> Any:
    # Only views need pydantic's serializer; rows are JSON already and print without it.
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def table(items: Iterable[T], columns: Sequence[Column[T]], title: str | None = None) -> Table:
    """A table with one row per item."""
    rows = [[_text(column.cell(item)) for column in columns] for item in items]
    out = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for i, column in enumerate(columns):
        widest = max([len(column.header), *(row[i].cell_len for row in rows)])
        out.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.wrap,
            min_width=None if column.wrap else widest,
            overflow="fold",  # never hide text behind an ellipsis
        )
    for row in rows:
        out.add_row(*row)
    return out


def print_list(items: Sequence[T], columns: Sequence[Column[T]], as_json: bool, noun: str) -> None:
    """Print items as a table, or as a JSON list with ``--json``; say so when there are none."""
    if as_json:
        print_json(items)
    elif not items:
        console.print(f"no {noun}", style="dim")
    else:
        console.print(table(items, columns))


def fields(pairs: Iterable[tuple[str, Cell | None]]) -> Table:
    """A two-column "key  value" grid for one object; pairs with value None are left out."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in pairs:
        if value is not None and value != "":
            grid.add_row(key, _text(value))
    return grid


def say(message: str) -> None:
    """Print one plain line on stdout."""
    typer.echo(message)


def state(value: str) -> Text:
    """A task, run or agent state in its colour."""
    return Text(value, style=_STYLES.get(value, "bold red" if value.endswith("ED") else ""))


def instant(value: str | None) -> datetime | None:
    """A row's ISO 8601 time (as the master writes it) as a datetime; None for None."""
    return None if value is None else datetime.fromisoformat(value)


def when(value: datetime | None, now: datetime | None = None) -> str:
    """A time in the local zone to the second, without the date if it is today; "" for None."""
    if value is None:
        return ""
    local = value.astimezone()
    today = (now or datetime.now()).astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M:%S")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, coarsely: ``4s ago``, ``3m ago``; "" for None."""
    if value is None:
        return ""
    seconds = ((now or datetime.now(value.tzinfo)) - value).total_seconds()
    if seconds < 120:
        return f"{max(0, int(seconds))}s ago"
    if seconds < 7200:
        return f"{int(seconds // 60)}m ago"
    return f"{int(seconds // 3600)}h ago"


def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    """How long from ``start`` to ``end`` (or to ``now`` while still going): 4.2s, 3m05s, 2h07m."""
    if start is None:
        return ""
    end = end or now or datetime.now(start.tzinfo)
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def counts(values: Mapping[TaskState, int] | Mapping[str, int], total: int | None = None) -> Text:
    """Tasks per state, coloured, non-zero only: ``3 FINISHED, 1 RUNNING`` (``of 5`` if given)."""
    out = Text()
    for task_state in TaskState:
        n = values.get(task_state, 0)
        if n:
            if out:
                out.append(", ")
            out.append(f"{n} {task_state}", style=_STYLES.get(task_state, ""))
    if total is not None:
        out.append(f" of {total}" if out else f"0 of {total}")
    return out


def _text(value: Cell) -> Text:
    return value if isinstance(value, Text) else Text(value)
