"""Accounts: who may call the master, and as what.

Users belong to one primary group (their work is counted to it) and possibly more; each holds
tokens. A token is 256 random bits, shown once and stored as its sha256: with that much entropy
a fast unkeyed hash can be neither reversed nor searched, so a keyed hash would add only a key
that every master of a cluster would have to share and nobody may lose. A token has the role of
its user or a narrower one (``may_hold``), may expire, may be revoked, and records its last use
to the minute (written at most once a minute, so reading the API does not become writing it).

``AccountOps`` holds the writes and authentication (the master's commands); ``AccountQueries``
the reads, reached as ``Queries.accounts``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corral.clock import Clock
from corral.master.admission import Refusal, Refused
from corral.master.jobs import Conflict, NotFound
from corral.spec.accounts import (
    DEFAULT_GROUP,
    CreatedToken,
    GroupView,
    Quota,
    Role,
    ShareSettings,
    TokenState,
    TokenView,
    UserChange,
    UserSpec,
    UserView,
    effective_role,
    may_hold,
)
from corral.store import accounts as rows
from corral.store.store import Fenced, Store, StoreFull, Tx, hash_token

log = logging.getLogger(__name__)
TOUCH_EVERY = 60.0  # seconds: a token's last use is recorded to the minute
ADMIN = "admin"  # the account ``corral up`` and ``corral master`` make the first token for
UNKNOWN_TOKEN = "not a token of this cluster"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from: an account and the role its token acts with."""

    name: str
    role: Role
    token_id: str | None = None  # None: the cluster needs no tokens (``--no-auth``)


def _at(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _iso(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _state(row: Mapping[Any, Any], now: float) -> TokenState:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and now >= row["expires_at"]:
        return "expired"
    return "active"


def token_view(row: Mapping[Any, Any], now: float) -> TokenView:
    """A stored token as the API shows it (never its hash)."""
    return TokenView(
        id=row["id"],
        user=row["user"],
        role=Role(row["role"]),
        name=row["name"],
        state=_state(row, now),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        expires_at=_at(row["expires_at"]),
        revoked_at=_at(row["revoked_at"]),
        last_used_at=_at(row["last_used_at"]),
    )


def quota_of(row: Mapping[Any, Any]) -> Quota:
    """A user's or a group's quota as stored (cpus in millicores there)."""
    millicpus = row["quota_millicpus"]
    return Quota(
        cpus=None if millicpus is None else millicpus / 1000,
        mem=row["quota_mem"],
        gpus=row["quota_gpus"],
        tasks=row["quota_tasks"],
    )


def share_columns(change: ShareSettings) -> dict[str, float | int | None]:
    """The columns a change of fair-share settings writes: only the fields it names (a weight
    named as null goes back to 1, a quota named as null is lifted)."""
    given = change.model_fields_set
    values: dict[str, float | int | None] = {}
    if "weight" in given:
        values["weight"] = 1.0 if change.weight is None else change.weight
    if "quota_cpus" in given:
        cpus = change.quota_cpus
        values["quota_millicpus"] = None if cpus is None else round(cpus * 1000)
    for name in ("quota_mem", "quota_gpus", "quota_tasks"):
        if name in given:
            values[name] = getattr(change, name)
    return values


def _group_view(row: Mapping[Any, Any], members: list[str]) -> GroupView:
    return GroupView(
        name=row["name"],
        members=members,
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        weight=row["weight"],
        quota=quota_of(row),
    )


class AccountQueries:
    """The reads of accounts: users, groups and tokens (never a token's secret or hash)."""

    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now

    def _user_view(self, row: Mapping[Any, Any], groups: list[str], tokens: int) -> UserView:
        primary = row["primary_group"]
        return UserView(
            name=row["name"],
            role=Role(row["role"]),
            group=primary,
            groups=[primary, *sorted(g for g in groups if g != primary)],
            created_at=datetime.fromtimestamp(row["created_at"], UTC),
            tokens=tokens,
            weight=row["weight"],
            quota=quota_of(row),
        )

    def _active_tokens(self) -> dict[str, int]:
        now, counts = self._now(), dict[str, int]()
        for t in rows.all_tokens(self._store):
            if _state(t, now) == "active":
                counts[t["user"]] = counts.get(t["user"], 0) + 1
        return counts

    def users(self) -> list[UserView]:
        """Every user, by name."""
        groups: dict[str, list[str]] = {}
        for g, u in rows.memberships(self._store):
            groups.setdefault(u, []).append(g)
        active = self._active_tokens()
        return [
            self._user_view(r, groups.get(r["name"], []), active.get(r["name"], 0))
            for r in rows.all_users(self._store)
        ]

    def user(self, name: str) -> UserView | None:
        """One user (None: no such user)."""
        row = rows.user(self._store, name)
        if row is None:
            return None
        active = sum(_state(t, self._now()) == "active" for t in rows.all_tokens(self._store, name))
        return self._user_view(row, rows.groups_of(self._store, name), active)

    def primary_group(self, name: str) -> str:
        """The primary group of a user ("" for a name that is no account)."""
        row = rows.user(self._store, name)
        return "" if row is None else str(row["primary_group"])

    def groups(self) -> list[GroupView]:
        """Every group with its members, by name."""
        members: dict[str, list[str]] = {}
        for g, u in rows.memberships(self._store):
            members.setdefault(g, []).append(u)
        return [_group_view(r, members.get(r["name"], [])) for r in rows.all_groups(self._store)]

    def group(self, name: str) -> GroupView | None:
        """One group with its members (None: no such group)."""
        row = rows.group(self._store, name)
        if row is None:
            return None
        return _group_view(row, rows.members_of(self._store, name))

    def tokens(self, user: str | None = None) -> list[TokenView]:
        """Tokens, newest first, of one user or of everyone."""
        now = self._now()
        return [token_view(r, now) for r in rows.all_tokens(self._store, user)]

    def token(self, token_id: str) -> TokenView | None:
        """One token (None: no such token)."""
        row = rows.token(self._store, token_id)
        return None if row is None else token_view(row, self._now())


class AccountOps:
    """The writes of accounts, and authentication. Each write is one fenced transaction."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        # Called after a change of what scheduling reads (roles aside: weights, quotas,
        # groups): the master reloads its fair-share settings.
        self.on_change: Callable[[], None] = lambda: None

    # --- who is calling

    def authenticate(self, token: str) -> Caller | str:
        """The caller a token stands for, or why it stands for nobody."""
        digest = hash_token(token)
        row = rows.token_by_hash(self.store, digest)
        if row is None or row["user_role"] is None:
            return UNKNOWN_TOKEN
        now = self.clock.now()
        if row["revoked_at"] is not None:
            return f"this token was revoked at {_iso(row['revoked_at'])}"
        if row["expires_at"] is not None and now >= row["expires_at"]:
            return f"this token expired at {_iso(row['expires_at'])}"
        role = effective_role(Role(row["user_role"]), Role(row["role"]))
        if role is None:
            return f"a {row['role']} token of a {row['user_role']} account stands for nobody"
        last = row["last_used_at"]
        if last is None or now - last >= TOUCH_EVERY:
            self._touch(digest, now)
        return Caller(row["user"], role, row["id"])

    def _touch(self, digest: str, now: float) -> None:
        # Best effort: a master that no longer leads, or a full disk, refuses every write; the
        # caller is who they are all the same.
        try:
            with self.store.tx() as tx:
                rows.touch_token(tx, digest, now)
        except (Fenced, StoreFull) as e:
            log.info("last use of a token not recorded: %s", e)

    # --- the tokens ``corral up`` and ``corral master`` start with

    def ensure_admin_token(self, token_file: Path) -> str:
        """The admin token: read from ``token_file`` while it works, else created (and written
        0600)."""
        return self._ensure(token_file, Role.ADMIN, "admin token of the master's data dir")

    def ensure_agent_token(self, token_file: Path) -> str:
        """An agent token for the local agent of ``corral up``, kept like the admin token."""
        return self._ensure(token_file, Role.AGENT, "local agent of corral up")

    def _ensure(self, token_file: Path, role: Role, name: str) -> str:
        if token_file.exists():
            token = token_file.read_text().strip()
            row = rows.token_by_hash(self.store, hash_token(token))
            if (
                row is not None
                and row["role"] == role
                and _state(row, self.clock.now()) == "active"
            ):
                return token
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        with self.store.tx() as tx:
            if rows.user(self.store, ADMIN) is None:
                self._default_group(tx, [DEFAULT_GROUP], now)
                rows.insert_user(tx, ADMIN, Role.ADMIN, DEFAULT_GROUP, now)
                rows.add_members(tx, DEFAULT_GROUP, [ADMIN])
            tx.add_token(token, ADMIN, role, now, name=name)
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.touch(mode=0o600)
        token_file.chmod(0o600)
        token_file.write_text(token + "\n")
        return token

    # --- users and groups

    def _user(self, name: str) -> Mapping[Any, Any]:
        row = rows.user(self.store, name)
        if row is None:
            raise NotFound(f"user {name!r} not found")
        return row

    def _missing_groups(self, names: Iterable[str], field: str) -> list[Refusal]:
        return [
            Refusal((field,), f"no group {g!r}: create it first (corral group add {g})")
            for g in sorted(set(names))
            if g != DEFAULT_GROUP and rows.group(self.store, g) is None
        ]

    def _default_group(self, tx: Tx, needed: Iterable[str], now: float) -> None:
        """Create the default group where it is needed and missing: every cluster has it, but
        its row is made as it is first needed (a store emptied of rows has none)."""
        if DEFAULT_GROUP in needed and rows.group(self.store, DEFAULT_GROUP) is None:
            rows.insert_group(tx, DEFAULT_GROUP, now)

    def add_user(self, spec: UserSpec) -> None:
        """Store a new user in their groups. ``Conflict`` if the name is taken, ``Refused`` for a
        group that does not exist."""
        if rows.user(self.store, spec.name) is not None:
            raise Conflict(f"user {spec.name!r} already exists")
        missing = self._missing_groups([spec.group], "group")
        missing += self._missing_groups(spec.groups, "groups")
        if missing:
            raise Refused(missing)
        groups, now = {spec.group, *spec.groups}, self.clock.now()
        with self.store.tx() as tx:
            self._default_group(tx, groups, now)
            rows.insert_user(tx, spec.name, spec.role, spec.group, now)
            for g in groups:
                rows.add_members(tx, g, [spec.name])
        self.on_change()

    def change_user(self, name: str, change: UserChange) -> None:
        """Set a user's role and fair-share settings (the fields given). The last admin keeps
        their role."""
        row = self._user(name)
        role = change.role
        if (
            role is not None
            and role is not Role.ADMIN
            and row["role"] == Role.ADMIN
            and rows.admins(self.store) <= 1
        ):
            raise Conflict(f"{name!r} is the last admin: make another admin first")
        values = share_columns(change)
        with self.store.tx() as tx:
            if role is not None:
                rows.set_role(tx, name, role)
            if values:
                rows.set_shares(tx, "user", name, values)
        self.on_change()

    def change_group(self, name: str, change: ShareSettings) -> None:
        """Set a group's fair-share settings (the fields given)."""
        if rows.group(self.store, name) is None:
            raise NotFound(f"group {name!r} not found")
        values = share_columns(change)
        if values:
            with self.store.tx() as tx:
                rows.set_shares(tx, "group", name, values)
        self.on_change()

    def remove_user(self, name: str) -> None:
        """Remove a user with their tokens and memberships; their work stays, owned by the name.
        The last admin cannot be removed."""
        row = self._user(name)
        if row["role"] == Role.ADMIN and rows.admins(self.store) <= 1:
            raise Conflict(f"{name!r} is the last admin: make another admin first")
        with self.store.tx() as tx:
            rows.delete_user(tx, name)
        self.on_change()

    def add_group(self, name: str) -> None:
        """Store a new group; ``Conflict`` if the name is taken."""
        if rows.group(self.store, name) is not None:
            raise Conflict(f"group {name!r} already exists")
        with self.store.tx() as tx:
            rows.insert_group(tx, name, self.clock.now())
        self.on_change()

    def remove_group(self, name: str) -> None:
        """Remove a group. Refused while it is a user's primary group, and for the default."""
        if rows.group(self.store, name) is None:
            raise NotFound(f"group {name!r} not found")
        if name == DEFAULT_GROUP:
            raise Conflict(f"{name!r} is the group of every user added without one: it stays")
        primary = rows.primary_of(self.store, name)
        if primary:
            raise Conflict(f"group {name!r} is the primary group of {', '.join(primary)}")
        with self.store.tx() as tx:
            rows.delete_group(tx, name)
        self.on_change()

    def _group_and_users(self, group: str, users: Iterable[str]) -> list[str]:
        if rows.group(self.store, group) is None:
            raise NotFound(f"group {group!r} not found")
        names = sorted(set(users))
        unknown = [u for u in names if rows.user(self.store, u) is None]
        if unknown:
            raise Refused([Refusal(("users",), f"no user {u!r}") for u in unknown])
        return names

    def add_members(self, group: str, users: Iterable[str]) -> None:
        """Make users members of a group (members already are left as they are)."""
        names = self._group_and_users(group, users)
        with self.store.tx() as tx:
            rows.add_members(tx, group, names)

    def remove_members(self, group: str, users: Iterable[str]) -> None:
        """Take users out of a group; not out of their primary group."""
        names = self._group_and_users(group, users)
        primary = [u for u in names if self._user(u)["primary_group"] == group]
        if primary:
            raise Conflict(f"{group!r} is the primary group of {', '.join(primary)}")
        with self.store.tx() as tx:
            rows.remove_members(tx, group, names)

    # --- tokens

    def create_token(
        self, user: str, role: Role | None, name: str, expires_in: float | None
    ) -> CreatedToken:
        """A new token of ``user``, of their role or a narrower one (``Refused`` if wider)."""
        account = Role(self._user(user)["role"])
        wanted = role or account
        if not may_hold(account, wanted):
            why = f"a {account} account may not hold a {wanted} token"
            raise Refused([Refusal(("role",), why)])
        token, token_id, now = secrets.token_urlsafe(32), secrets.token_hex(6), self.clock.now()
        expires_at = None if expires_in is None else now + expires_in
        with self.store.tx() as tx:
            tx.add_token(
                token, user, wanted, now, token_id=token_id, name=name, expires_at=expires_at
            )
        row = rows.token(self.store, token_id)
        assert row is not None  # just committed
        return CreatedToken(**token_view(row, now).model_dump(), token=token)

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token; revoking it again changes nothing."""
        if rows.token(self.store, token_id) is None:
            raise NotFound(f"token {token_id!r} not found")
        with self.store.tx() as tx:
            rows.revoke_token(tx, token_id, self.clock.now())
