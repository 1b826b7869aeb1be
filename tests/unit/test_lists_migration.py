"""Migration 0012 on a store written before task counts were kept and tasks numbered: each run
gets its newest attempts' counts per state, each task its number in creation order, and lists
read them; on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from corral.store.bulk import counts_of
from corral.store.store import Store
from tests.unit.test_accounts_migration import empty_store, upgrade

__all__ = ["empty_store"]  # the fixture, for pytest

TASK_COLUMNS = ("id", "job", "run", "slot", "idx", "attempt", "latest", "state", "reason")
TASKS = sa.table(
    "tasks",
    *map(sa.column, TASK_COLUMNS),
    *map(sa.column, ("owner", "priority", "launch", "placement", "kill_requested", "created_at")),
)
RUNS = sa.table("runs", *map(sa.column, ("job", "number", "state", "total", "created_at")))

# (slot, attempt, latest, state, created_at): slot 1's first attempt failed and was retried
# after slot 2 was created, so creation order is not the order of ids.
OLD_TASKS = [
    (0, 0, True, "FINISHED", 10.0),
    (1, 0, False, "FAILED", 10.0),
    (2, 0, True, "RUNNING", 10.0),
    (1, 1, True, "PENDING", 20.0),
]


def task(slot: int, attempt: int, latest: bool, state: str, created_at: float) -> dict[str, object]:
    return {
        "id": f"sweep.1.{slot}.{attempt}",
        "job": "sweep",
        "run": 1,
        "slot": slot,
        "idx": slot,
        "attempt": attempt,
        "latest": latest,
        "state": state,
        "reason": "",
        "owner": "alice",
        "priority": 0,
        "launch": '{"task_id": "x", "job": "sweep", "cpus": 1, "mem": 1}',
        "placement": '{"strategy": "binpack", "constraints": []}',
        "kill_requested": False,
        "created_at": created_at,
    }


def test_existing_runs_get_their_counts_and_tasks_their_creation_order(
    empty_store: Store,
) -> None:
    upgrade(empty_store, "0011")
    with empty_store.engine.begin() as conn:
        conn.execute(
            RUNS.insert().values(job="sweep", number=1, state="RUNNING", total=3, created_at=10.0)
        )
        conn.execute(TASKS.insert(), [task(*t) for t in OLD_TASKS])
    empty_store.migrate()
    (run,) = empty_store.runs("sweep")
    assert counts_of(run) == {"FINISHED": 1, "RUNNING": 1, "PENDING": 1}
    listed = empty_store.tasks(job="sweep")
    assert [r["id"] for r in listed] == ["sweep.1.0.0", "sweep.1.1.0", "sweep.1.2.0", "sweep.1.1.1"]
    assert [r["seq"] for r in listed] == [1, 2, 3, 4]
    page = empty_store.tasks(job="sweep", after=listed[1]["seq"], limit=1)
    assert [r["id"] for r in page] == ["sweep.1.2.0"]
