"""The store's queries of accounts: users, groups, memberships and tokens.

Small functions over ``Store`` (reads) and ``Tx`` (writes), kept apart from ``store.py`` so that
the backends' code and the accounts' code change independently (a token is stored by
``Tx.add_token``). Only portable SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager

from sqlalchemy import (
    Connection,
    Executable,
    RowMapping,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from corral.store.schema import CREATED, events, group_members, groups, tokens, users
from corral.store.schema import fair_share_usage as fair_share_usage_table
from corral.store.store import Store, Tx


def _reading(store: Store) -> AbstractContextManager[Connection]:
    """A connection to read on; a database that cannot be reached raises ``StoreUnavailable``
    (the store's own translation of its errors, which every read of it goes through)."""
    return store._reading()


def _all(store: Store, stmt: Executable) -> list[RowMapping]:
    with _reading(store) as conn:
        return list(conn.execute(stmt).mappings().all())


def _one(store: Store, stmt: Executable) -> RowMapping | None:
    rows = _all(store, stmt)
    return rows[0] if rows else None


# --- reads


def user(store: Store, name: str) -> RowMapping | None:
    """One user, or None."""
    return _one(store, select(users).where(users.c.name == name))


def all_users(store: Store) -> list[RowMapping]:
    """Every user, by name."""
    return _all(store, select(users).order_by(users.c.name))


def admins(store: Store) -> int:
    """How many users are admins."""
    with _reading(store) as conn:
        stmt = select(func.count()).select_from(users).where(users.c.role == "admin")
        return int(conn.execute(stmt).scalar() or 0)


def group(store: Store, name: str) -> RowMapping | None:
    """One group, or None."""
    return _one(store, select(groups).where(groups.c.name == name))


def all_groups(store: Store) -> list[RowMapping]:
    """Every group, by name."""
    return _all(store, select(groups).order_by(groups.c.name))


def memberships(store: Store) -> list[tuple[str, str]]:
    """Every (group, user) pair, by group then user."""
    stmt = select(group_members.c.group_name, group_members.c.user_name).order_by(
        group_members.c.group_name, group_members.c.user_name
    )
    with _reading(store) as conn:
        return [(g, u) for g, u in conn.execute(stmt).all()]


def groups_of(store: Store, name: str) -> list[str]:
    """The groups a user belongs to, by name."""
    stmt = (
        select(group_members.c.group_name)
        .where(group_members.c.user_name == name)
        .order_by(group_members.c.group_name)
    )
    with _reading(store) as conn:
        return list(conn.execute(stmt).scalars().all())


def members_of(store: Store, name: str) -> list[str]:
    """The users of a group, by name."""
    stmt = (
        select(group_members.c.user_name)
        .where(group_members.c.group_name == name)
        .order_by(group_members.c.user_name)
    )
    with _reading(store) as conn:
        return list(conn.execute(stmt).scalars().all())


def primary_of(store: Store, group_name: str) -> list[str]:
    """The users whose primary group this is."""
    stmt = select(users.c.name).where(users.c.primary_group == group_name).order_by(users.c.name)
    with _reading(store) as conn:
        return list(conn.execute(stmt).scalars().all())


def token_by_hash(store: Store, digest: str) -> RowMapping | None:
    """The token of this hash with its user's role (``user_role``; None: the user is gone)."""
    stmt = (
        select(tokens, users.c.role.label("user_role"))
        .select_from(tokens.outerjoin(users, users.c.name == tokens.c.user))
        .where(tokens.c.hash == digest)
    )
    return _one(store, stmt)


def token(store: Store, token_id: str) -> RowMapping | None:
    """One token by its id, or None."""
    return _one(store, select(tokens).where(tokens.c.id == token_id))


def all_tokens(store: Store, user_name: str | None = None) -> list[RowMapping]:
    """Tokens, newest first, of one user or of all."""
    stmt = select(tokens).order_by(tokens.c.created_at.desc(), tokens.c.id)
    if user_name is not None:
        stmt = stmt.where(tokens.c.user == user_name)
    return _all(store, stmt)


def creations(store: Store, workload: str) -> list[tuple[int, str]]:
    """(event id, owner) of every creation of a job or service of this name, oldest first:
    who owned the name from which event on."""
    stmt = (
        select(events.c.id, events.c.data)
        .where(events.c.job == workload, text(CREATED))
        .order_by(events.c.id)
    )
    with _reading(store) as conn:
        found = conn.execute(stmt).all()
    return [(i, str(d["owner"])) for i, d in found if isinstance(d, dict) and "owner" in d]


# --- writes


def insert_user(tx: Tx, name: str, role: str, primary_group: str, now: float) -> None:
    """Store a user (their memberships are added apart)."""
    tx.conn.execute(
        insert(users).values(name=name, role=role, primary_group=primary_group, created_at=now)
    )


def delete_user(tx: Tx, name: str) -> None:
    """Remove a user, their memberships and their tokens."""
    tx.conn.execute(delete(group_members).where(group_members.c.user_name == name))
    tx.conn.execute(delete(tokens).where(tokens.c.user == name))
    tx.conn.execute(delete(users).where(users.c.name == name))


def insert_group(tx: Tx, name: str, now: float) -> None:
    """Store a group."""
    tx.conn.execute(insert(groups).values(name=name, created_at=now))


def delete_group(tx: Tx, name: str) -> None:
    """Remove a group and its memberships."""
    tx.conn.execute(delete(group_members).where(group_members.c.group_name == name))
    tx.conn.execute(delete(groups).where(groups.c.name == name))


def add_members(tx: Tx, group_name: str, user_names: Iterable[str]) -> None:
    """Make users members of a group (those already members are left as they are)."""
    have = set(
        tx.conn.execute(
            select(group_members.c.user_name).where(group_members.c.group_name == group_name)
        ).scalars()
    )
    rows = [{"group_name": group_name, "user_name": u} for u in sorted(set(user_names) - have)]
    if rows:
        tx.conn.execute(insert(group_members), rows)


def remove_members(tx: Tx, group_name: str, user_names: Iterable[str]) -> None:
    """Take users out of a group."""
    cond = (group_members.c.group_name == group_name) & group_members.c.user_name.in_(
        sorted(set(user_names))
    )
    tx.conn.execute(delete(group_members).where(cond))


def set_shares(tx: Tx, kind: str, name: str, values: dict[str, float | int | None]) -> None:
    """Change fair-share columns (weight, quota_*) of a user (``kind`` "user") or a group."""
    table = users if kind == "user" else groups
    tx.conn.execute(update(table).where(table.c.name == name).values(**values))


def set_role(tx: Tx, name: str, role: str) -> None:
    """Change a user's role."""
    tx.conn.execute(update(users).where(users.c.name == name).values(role=role))


def fair_share_usage(store: Store) -> list[RowMapping]:
    """Every owner's decayed usage as last written."""
    return _all(store, select(fair_share_usage_table).order_by(fair_share_usage_table.c.owner))


def write_fair_share_usage(tx: Tx, rows: list[dict[str, float | str]]) -> None:
    """Replace every owner's decayed usage by ``rows``."""
    tx.conn.execute(delete(fair_share_usage_table))
    if rows:
        tx.conn.execute(insert(fair_share_usage_table), rows)


def revoke_token(tx: Tx, token_id: str, now: float) -> None:
    """Mark a token revoked (kept, so lists can say when)."""
    cond = (tokens.c.id == token_id) & tokens.c.revoked_at.is_(None)
    tx.conn.execute(update(tokens).where(cond).values(revoked_at=now))


def touch_token(tx: Tx, digest: str, now: float) -> None:
    """Record that a token was used."""
    tx.conn.execute(update(tokens).where(tokens.c.hash == digest).values(last_used_at=now))
