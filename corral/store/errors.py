"""What a store refuses, and why: the errors the API answers with 503, and how a database
error is told apart (full disk, database gone) on SQLite and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

# How each database says it ran out of space: SQLite's SQLITE_FULL text, PostgreSQL's
# disk_full SQLSTATE, and the OS's ENOSPC text that either may pass on.
_FULL_TEXTS = ("database or disk is full", "no space left on device")
_DISK_FULL_SQLSTATE = "53100"
# PostgreSQL going away or turning us away: class 08 (connection exception), 28 (the role or
# its password refused), an administrator's or a crash's shutdown, a server still starting,
# no connection slot left, the database missing (dropped, or being restored).
_GONE_CLASSES = ("08", "28")
_GONE_SQLSTATES = ("57P01", "57P02", "57P03", "53300", "3D000")
# SQLite: the file cannot be opened or read, or another process holds the lock too long.
_GONE_SQLITE = ("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED")


class StoreFull(Exception):
    """A write was refused because the store's disk is full; the transaction was rolled back."""

    def __init__(self) -> None:
        super().__init__(
            "the state store is full (database or disk is full): nothing was changed; "
            "free space on the master's disk and try again"
        )


class StoreUnavailable(Exception):
    """The database cannot be reached (down, restarting, unreadable): nothing was read or
    written, and the next call tries again."""

    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(
            f"the state store is unavailable ({why}): nothing was changed; "
            "try again once the database is back"
        )


# What a store refuses for a while (the database down, the disk full): the master's loops log
# one line and try again; the API answers 503.
Refusal = (StoreUnavailable, StoreFull)


class StoreUnusable(Exception):
    """The store cannot be opened as configured (a bad URL, a missing driver); the message
    says what to do."""


class Fenced(Exception):
    """A newer master took the lead: this one may no longer write (nothing was changed)."""

    def __init__(self, mine: int | None, newest: int | None) -> None:
        self.mine, self.newest = mine, newest
        if mine is None:
            super().__init__("this master does not lead: it writes nothing")
            return
        super().__init__(
            f"this master (epoch {mine}) is no longer the leader"
            + (f": epoch {newest} leads now" if newest is not None else "")
        )


def is_full(exc: DBAPIError) -> bool:
    """Whether a database error says the disk is full."""
    if not isinstance(exc, OperationalError):
        return False
    if getattr(exc.orig, "sqlstate", None) == _DISK_FULL_SQLSTATE:
        return True
    text = str(exc.orig).lower()
    return any(phrase in text for phrase in _FULL_TEXTS)


def is_unavailable(exc: DBAPIError) -> bool:
    """Whether a database error says the database cannot be reached now (rather than that
    the statement was wrong)."""
    if exc.connection_invalidated:
        return True
    sqlite_name = getattr(exc.orig, "sqlite_errorname", None)
    if sqlite_name is not None:
        return str(sqlite_name).startswith(_GONE_SQLITE)
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    # psycopg gives a failure to connect no SQLSTATE: the server never answered.
    return sqlstate is None or sqlstate.startswith(_GONE_CLASSES) or sqlstate in _GONE_SQLSTATES


def why_unavailable(exc: DBAPIError) -> str:
    """The driver's own words for a lost database, on one line."""
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    return lines[0] if lines else type(exc.orig).__name__
