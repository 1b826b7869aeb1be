"""The store's side of accounting (``corral usage``): the task attempts that ran or ended in a
window, from the tasks and from the accounting of deleted work (``task_usage``), which
``archive`` fills as tasks are deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, func, insert, literal, select, union_all
from sqlalchemy.sql.dml import Insert

from corral.store.schema import jobs, services, task_usage, tasks, users

SPAN_COLUMNS = (
    "owner",
    "group",
    "state",
    "cpus",
    "mem",
    "gpus",
    "started_at",
    "finished_at",
    "preempted_by",
)


def _spans_of_tasks() -> Select[Any]:
    """Every task as accounting reads it: its group is its job's or service's, else its
    owner's primary group; its resources are its launch's."""
    t = tasks.c
    group = func.coalesce(
        func.nullif(jobs.c.owner_group, ""),
        func.nullif(services.c.owner_group, ""),
        users.c.primary_group,
        literal(""),
    )
    return select(
        t.owner,
        group.label("group"),
        t.state,
        func.coalesce(t.launch["cpus"].as_float(), 0.0).label("cpus"),
        func.coalesce(t.launch["mem"].as_integer(), 0).label("mem"),
        func.coalesce(t.launch["gpus"].as_integer(), 0).label("gpus"),
        t.started_at,
        t.finished_at,
        t.preempted_by,
    ).select_from(
        tasks.outerjoin(jobs, jobs.c.name == t.job)
        .outerjoin(services, services.c.id == t.job)
        .outerjoin(users, users.c.name == t.owner)
    )


def _in_window(
    started: ColumnElement[Any], finished: ColumnElement[Any], since: float, until: float
) -> ColumnElement[bool]:
    """Ran within ``[since, until)``, or ended in it."""
    ran = started.is_not(None) & (started < until) & (finished.is_(None) | (finished > since))
    ended = (finished >= since) & (finished < until)
    return ran | ended


def usage_query(since: float, until: float, owner: str | None) -> Any:
    """The spans of ``[since, until)`` (of ``owner``), live and deleted, as ``SPAN_COLUMNS``."""
    t, u = tasks.c, task_usage.c
    live = _spans_of_tasks().where(_in_window(t.started_at, t.finished_at, since, until))
    gone = select(
        u.owner,
        u.owner_group.label("group"),
        u.state,
        u.cpus,
        u.mem,
        u.gpus,
        u.started_at,
        u.finished_at,
        u.preempted_by,
    ).where(_in_window(u.started_at, u.finished_at, since, until))
    if owner is not None:
        live, gone = live.where(t.owner == owner), gone.where(u.owner == owner)
    return union_all(live, gone)


def archive(cond: ColumnElement[bool]) -> Insert:
    """Keep the accounting of the tasks matching ``cond`` that ran or ended, before they are
    deleted."""
    t = tasks.c
    spans = (
        _spans_of_tasks()
        .add_columns(t.id)
        .where(cond & (t.started_at.is_not(None) | t.finished_at.is_not(None)))
    )
    columns = ["owner", "owner_group", *SPAN_COLUMNS[2:], "id"]
    return insert(task_usage).from_select(columns, spans)
