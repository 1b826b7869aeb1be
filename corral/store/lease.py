"""The leadership lease in the store: read it, renew it, take it (one transaction each).

Times are the database's own (PostgreSQL's ``clock_timestamp()``; SQLite's, which is this
host's): masters on several hosts compare lease ends on one clock. Taking the lead locks the
row (``FOR UPDATE``), which waits for every write transaction of the old leader still under
way: each holds the row ``FOR KEY SHARE`` from its fence on (see ``Store._fence``). A renewal
changes no key, so it waits for none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, literal_column, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from corral.store.schema import leadership

_SQLITE_NOW = "(julianday('now') - 2440587.5) * 86400.0"
_POSTGRES_NOW = "extract(epoch from clock_timestamp())"
# Milliseconds a master taking the lead waits for the old leader's transactions to end before
# trying again at its next look (a frozen leader's are ended by the server, engines.py).
TAKE_LOCK_TIMEOUT_MS = 1000


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """The leadership row."""

    epoch: int
    holder: str
    url: str
    since: float
    renewed_at: float
    expires_at: float


MayTake = Callable[[LeaseRow | None, float], bool]  # (the row, the store's now) -> take it?


def store_now(conn: Connection) -> float:
    """The database's clock, seconds since the epoch."""
    now = _POSTGRES_NOW if conn.dialect.name == "postgresql" else _SQLITE_NOW
    return float(conn.execute(select(literal_column(now))).scalar_one())


def read(conn: Connection, lock: bool = False) -> LeaseRow | None:
    """The row, or None before any master led; ``lock``: locked ``FOR UPDATE``."""
    stmt = select(
        leadership.c.epoch,
        leadership.c.holder,
        leadership.c.url,
        leadership.c.since,
        leadership.c.renewed_at,
        leadership.c.expires_at,
    ).where(leadership.c.id == 1)
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return None if row is None else LeaseRow(*row)


def renew(conn: Connection, epoch: int, holder: str, seconds: float) -> bool:
    """Extend the lease of ``holder`` at ``epoch`` to ``seconds`` from now; False if it is no
    longer theirs."""
    now = store_now(conn)
    done = conn.execute(
        update(leadership)
        .where(leadership.c.id == 1, leadership.c.epoch == epoch, leadership.c.holder == holder)
        .values(renewed_at=now, expires_at=now + seconds)
    )
    return done.rowcount == 1


def take(conn: Connection, holder: str, url: str, seconds: float, may_take: MayTake) -> int | None:
    """Take the next epoch if ``may_take`` still says so of the row once locked; answers the
    new epoch, or None (someone else leads, or the old leader's writes did not end in time)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL lock_timeout = {TAKE_LOCK_TIMEOUT_MS}"))
    try:
        row = read(conn, lock=True)
    except OperationalError:
        return None  # the lock was not ours in time
    now = store_now(conn)
    if not may_take(row, now):
        return None
    epoch = (row.epoch if row else 0) + 1
    values = {
        "epoch": epoch,
        "holder": holder,
        "url": url,
        "since": now,
        "renewed_at": now,
        "expires_at": now + seconds,
    }
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(leadership).values(id=1, **values))
        except IntegrityError:
            return None  # another master's first lead came first
        return epoch
    # The epoch seen is checked again: SQLite locks nothing by FOR UPDATE.
    done = conn.execute(
        update(leadership)
        .where(leadership.c.id == 1, leadership.c.epoch == row.epoch)
        .values(**values)
    )
    return epoch if done.rowcount == 1 else None


def release(conn: Connection, epoch: int, holder: str) -> None:
    """End our lease now, so that another master need not wait for it to expire."""
    conn.execute(
        update(leadership)
        .where(leadership.c.id == 1, leadership.c.epoch == epoch, leadership.c.holder == holder)
        .values(expires_at=0.0)
    )
