"""Writes in bulk for the hot paths: new tasks and events, the changes of tasks' states, and the
task counts of runs that a transaction changes.

They go through the driver's ``executemany`` as plain SQL: SQLAlchemy's statement building,
cache keys and per-row parameter processing cost more than the database's own work (a run of
100,000 tasks; a master applying every agent's status updates). New tasks come with their JSON
columns already serialized (a launch is packed as JSON once, when its row is made).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, insert

from corral.store.schema import COUNT_COLUMNS


class _Sql:
    """How a connection's driver writes a statement: quoted names, its parameter mark, and a
    parameter of JSON text (SQLite keeps JSON as text; PostgreSQL is told it is JSON)."""

    def __init__(self, conn: Connection) -> None:
        self.quote = conn.dialect.identifier_preparer.quote
        self.mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self.json_mark = self.mark + ("::json" if conn.dialect.name == "postgresql" else "")

    def param(self, column: str, as_json: Container[str]) -> str:
        return self.json_mark if column in as_json else self.mark


def insert_many(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    json_columns: Iterable[str],
    *,
    serialize: bool = False,
    numbered: tuple[str, int] | None = None,
) -> None:
    """Insert ``rows`` (each with the same keys) into ``table``; the columns named in
    ``json_columns`` are given as JSON text (or None), or as values to serialize if
    ``serialize``. ``numbered`` (a column and a first number) numbers the rows in order in that
    column as well."""
    if not rows:
        return
    columns = list(rows[0])
    as_json = set(json_columns)
    sql = _Sql(conn)
    names = [sql.quote(c) for c in columns]
    marks = [sql.param(c, as_json) for c in columns]
    if numbered is not None:
        names.append(sql.quote(numbered[0]))
        marks.append(sql.mark)
    text = f"INSERT INTO {sql.quote(table.name)} ({', '.join(names)}) VALUES ({', '.join(marks)})"
    conn.exec_driver_sql(text, _params(rows, columns, as_json if serialize else set(), numbered))


def _params(
    rows: Sequence[Mapping[str, Any]],
    columns: list[str],
    serialize: Container[str],
    numbered: tuple[str, int] | None,
) -> list[tuple[Any, ...]]:
    """The rows' values in the order of ``columns`` (an ``itemgetter`` reads a row's values in
    one C call: a generator per row cost as much as the database's insert, 100,000 rows)."""
    params: list[tuple[Any, ...]]
    if len(columns) == 1:  # an itemgetter of one column answers the value, not a tuple
        params = [(row[columns[0]],) for row in rows]
    else:
        get = itemgetter(*columns)
        params = [get(row) for row in rows]
    to_text = [i for i, c in enumerate(columns) if c in serialize]
    if to_text:
        params = [_with_text(values, to_text) for values in params]
    if numbered is not None:
        first = numbered[1]
        params = [(*values, first + i) for i, values in enumerate(params)]
    return params


def _with_text(values: tuple[Any, ...], positions: list[int]) -> tuple[Any, ...]:
    as_list = list(values)
    for i in positions:
        as_list[i] = json_text(as_list[i])
    return tuple(as_list)


def update_many(
    conn: Connection,
    table: Table,
    key: str,
    changes: Mapping[Any, Mapping[str, Any]],
    json_columns: Iterable[str] = (),
) -> None:
    """Set columns of the rows of ``table`` whose ``key`` is each key of ``changes`` to its
    values (the columns named in ``json_columns`` as values to serialize); rows given the same
    columns are written in one statement."""
    as_json = set(json_columns)
    by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for found, values in changes.items():
        columns = tuple(sorted(values))
        row = tuple(json_text(values[c]) if c in as_json else values[c] for c in columns)
        by_columns.setdefault(columns, []).append((*row, found))
    sql = _Sql(conn)
    for columns, params in by_columns.items():
        sets = ", ".join(f"{sql.quote(c)} = {sql.param(c, as_json)}" for c in columns)
        text = f"UPDATE {sql.quote(table.name)} SET {sets} WHERE {sql.quote(key)} = {sql.mark}"
        conn.exec_driver_sql(text, params)


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
    insert_many(conn, table, rows, json_columns, serialize=True)
    last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
    return list(range(last - len(rows) + 1, last + 1))


def json_text(value: Any) -> str | None:
    """A value as JSON text (None stays NULL)."""
    if value is None:
        return None
    if type(value) is dict and not value:  # most events' data: not worth an encoder
        return "{}"
    return json.dumps(value)


class RunCounts:
    """The changes of runs' task counts in one transaction, written as one statement."""

    def __init__(self) -> None:
        self._deltas: dict[tuple[str, int], Counter[str]] = {}

    def move(self, job: str, run: int, old: str | None, new: str | None, n: int = 1) -> None:
        """``n`` newest-attempt tasks of run ``run`` of ``job`` left state ``old`` for ``new``
        (None: they were not counted before, or are no longer)."""
        deltas = self._deltas.setdefault((job, run), Counter())
        if old is not None:
            deltas[old] -= n
        if new is not None:
            deltas[new] += n

    def write(self, conn: Connection) -> None:
        """Add the changes to the runs' rows."""
        deltas, self._deltas = self._deltas, {}
        params = [
            (*(d.get(state, 0) for state in COUNT_COLUMNS), job, run)
            for (job, run), d in deltas.items()
            if any(d.values())
        ]
        if not params:
            return
        sql = _Sql(conn)
        sets = ", ".join(f"{c} = {c} + {sql.mark}" for c in COUNT_COLUMNS.values())
        text = f"UPDATE runs SET {sets} WHERE job = {sql.mark} AND number = {sql.mark}"
        conn.exec_driver_sql(text, params)


def counts_of(row: Mapping[Any, Any]) -> dict[str, int]:
    """A run row's tasks per state, the states it has none of left out."""
    return {state: n for state, c in COUNT_COLUMNS.items() if (n := row[c])}
