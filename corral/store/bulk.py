"""Writes in bulk for the hot paths: many task rows in one statement, and the task counts that a
transaction changes.

A run of 100,000 tasks is inserted through the driver's ``executemany`` with its JSON columns
already serialized (a launch is packed as JSON once, when its row is made): SQLAlchemy's
per-row parameter processing and JSON encoding cost more than the database's own work.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, update

from corral.store.schema import COUNT_COLUMNS, runs


def insert_many(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], json_columns: Iterable[str]
) -> None:
    """Insert ``rows`` (each with the same keys) into ``table``; the columns named in
    ``json_columns`` are given as JSON text (or None)."""
    if not rows:
        return
    columns = list(rows[0])
    as_json = set(json_columns)
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    # SQLite keeps JSON as text; PostgreSQL is told the text is JSON.
    cast = "::json" if conn.dialect.name == "postgresql" else ""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join(f"{mark}{cast}" if c in as_json else mark for c in columns)
    sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"
    conn.exec_driver_sql(sql, [tuple(r[c] for c in columns) for r in rows])


def insert_numbered(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], json_columns: Iterable[str]
) -> list[int]:
    """Insert ``rows`` (each with the same keys; the columns named in ``json_columns`` as
    values to serialize) into ``table``, whose integer primary key ``id`` numbers them;
    answers their ids in order."""
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(conn.execute(stmt, rows).scalars().all())
    # SQLite numbers new rows one past the largest id, one after the other, and this
    # transaction holds the write lock from the first row on: the ids are the last ones.
    as_json = set(json_columns)
    insert_many(conn, table, [_serialized(r, as_json) for r in rows], as_json)
    last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
    return list(range(last - len(rows) + 1, last + 1))


def _serialized(row: Mapping[str, Any], columns: set[str]) -> dict[str, Any]:
    return {k: json_text(v) if k in columns else v for k, v in row.items()}


def json_text(value: Any) -> str | None:
    """A value as JSON text (None stays NULL)."""
    return None if value is None else json.dumps(value)


class RunCounts:
    """The changes of runs' task counts in one transaction, written as one statement."""

    def __init__(self) -> None:
        self._deltas: dict[tuple[str, int], Counter[str]] = {}

    def move(self, job: str, run: int, old: str | None, new: str | None) -> None:
        """A newest-attempt task of run ``run`` of ``job`` left state ``old`` for ``new``
        (None: it was not counted before, or is no longer)."""
        deltas = self._deltas.setdefault((job, run), Counter())
        if old is not None:
            deltas[old] -= 1
        if new is not None:
            deltas[new] += 1

    def write(self, conn: Connection) -> None:
        """Add the changes to the runs' rows."""
        if not self._deltas:
            return
        deltas, self._deltas = self._deltas, {}
        stmt = (
            update(runs)
            .where(runs.c.job == bindparam("b_job"), runs.c.number == bindparam("b_run"))
            .values({c: runs.c[c] + bindparam(f"d_{c}") for c in COUNT_COLUMNS.values()})
        )
        params = [
            {"b_job": job, "b_run": run}
            | {f"d_{c}": d.get(state, 0) for state, c in COUNT_COLUMNS.items()}
            for (job, run), d in deltas.items()
            if any(d.values())
        ]
        if params:
            conn.execute(stmt, params)


def counts_of(row: Mapping[Any, Any]) -> dict[str, int]:
    """A run row's tasks per state, the states it has none of left out."""
    return {state: n for state, c in COUNT_COLUMNS.items() if (n := row[c])}
