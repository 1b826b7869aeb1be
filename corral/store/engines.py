"""Opening a database: the URL a user gives, the driver it needs, and each backend's settings.

SQLite (the default, one file) and PostgreSQL (through psycopg 3, for several masters) are the
backends Corral supports.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from corral.store.errors import StoreUnusable

POSTGRES_DRIVER = "postgresql+psycopg"
INSTALL_POSTGRES = "pip install 'corral[postgres]'"
# Seconds to wait for PostgreSQL to answer a new connection: a server that is down answers
# the API with 503 after this long at most, not after the OS's TCP timeout (minutes).
CONNECT_TIMEOUT = 5
# Milliseconds a master's transaction may sit idle before PostgreSQL ends it: a master frozen
# (SIGSTOP, a stalled VM) in the middle of a transaction would otherwise hold its locks, the
# leadership row's among them, so no other master could take the lead until it woke.
IDLE_IN_TRANSACTION_MS = 10_000
# Seconds a SQLite connection waits for another's lock before it reports the store busy.
BUSY_SECONDS = 5


def database_url(url: str) -> URL:
    """The SQLAlchemy URL of a store: ``postgresql://`` and ``postgres://`` URLs (as libpq,
    psql and most hosting services write them) use psycopg 3.

    Raises ``StoreUnusable`` for a URL of no supported database, or when psycopg is missing.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreUnusable(
            f"--db {url!r} is not a database URL: give sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST/DATABASE"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed
    if backend not in ("postgresql", "postgres"):
        raise StoreUnusable(
            f"--db: {backend!r} is not a supported database: use sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST/DATABASE"
        )
    if parsed.drivername not in ("postgresql", "postgres", POSTGRES_DRIVER):
        raise StoreUnusable(
            f"--db: Corral talks to PostgreSQL through psycopg 3 only, not "
            f"{parsed.get_driver_name()!r}: write the URL as postgresql://…"
        )
    if importlib.util.find_spec("psycopg") is None:
        raise StoreUnusable(
            f"PostgreSQL needs the psycopg driver, which is not installed: {INSTALL_POSTGRES}"
        )
    return parsed.set(drivername=POSTGRES_DRIVER)


def redacted(url: str) -> str:
    """A store's URL fit to print: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    # busy_timeout waits instead of failing on a lock; WAL lets readers run beside the writer;
    # NORMAL sync survives a process crash (kill -9), which is what the master must survive.
    cur.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
    _use_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _use_wal(cur: sqlite3.Cursor) -> None:
    """Put a new database in WAL mode (it stays so). Connections opening a new file together
    (masters started at once) may all ask; the switch takes an exclusive lock, and SQLite
    refuses at once, without waiting, the one that would deadlock: it asks again."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def open_engine(url: str) -> Engine:
    """An engine for a store's URL (see ``database_url``), set up for its backend."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        # One connection per thread is fine for the single-writer master.
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if "options" not in parsed.query:
        connect_args["options"] = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    # A pooled connection outlives a restart of the server: check it before use, so the first
    # call after the database is back succeeds instead of failing on a dead socket.
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
