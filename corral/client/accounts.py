"""Accounts in the clients: users, groups and tokens, as ``Client.accounts`` and
``AsyncClient.accounts``. The calls are described once (``Call``s, as in ``_calls``) and sent by
either client."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol, TypeVar

from pydantic import TypeAdapter

from corral.client._calls import Call, Params, _many, _nothing, _one, _q
from corral.spec.accounts import (
    CreatedToken,
    GroupView,
    Role,
    ShareSettings,
    TokenSpec,
    TokenView,
    UserChange,
    UserSpec,
    UserView,
)
from corral.spec.share import ShareReport

T = TypeVar("T")
API = "/api/v1"

_USERS = TypeAdapter(list[UserView])
_GROUPS = TypeAdapter(list[GroupView])
_TOKENS = TypeAdapter(list[TokenView])


class Send(Protocol):
    """How the blocking client sends a call."""

    def __call__(self, call: Call[T], /) -> T: ...


class SendAsync(Protocol):
    """How the asyncio client sends a call."""

    def __call__(self, call: Call[T], /) -> Awaitable[T]: ...


# --- the calls


def users() -> Call[list[UserView]]:
    """``GET /api/v1/users``."""
    return Call("GET", f"{API}/users", _many(_USERS))


def user(name: str) -> Call[UserView]:
    """``GET /api/v1/users/{name}``."""
    return Call("GET", f"{API}/users/{_q(name)}", _one(UserView))


def add_user(spec: UserSpec) -> Call[UserView]:
    """``POST /api/v1/users`` (admins): 409 if the name is taken."""
    return Call("POST", f"{API}/users", _one(UserView), body=spec.model_dump(mode="json"))


def change_user(name: str, change: UserChange) -> Call[UserView]:
    """``PATCH /api/v1/users/{name}`` (admins): the fields set in ``change`` (a quota set to
    None is lifted)."""
    body = change.model_dump(mode="json", exclude_unset=True)
    return Call("PATCH", f"{API}/users/{_q(name)}", _one(UserView), body=body)


def change_group(name: str, change: ShareSettings) -> Call[GroupView]:
    """``PATCH /api/v1/groups/{name}`` (admins), as ``change_user``."""
    body = change.model_dump(mode="json", exclude_unset=True)
    return Call("PATCH", f"{API}/groups/{_q(name)}", _one(GroupView), body=body)


def share() -> Call[ShareReport]:
    """``GET /api/v1/share``: every user's standing in fair share, next in line first."""
    return Call("GET", f"{API}/share", _one(ShareReport))


def remove_user(name: str) -> Call[None]:
    """``DELETE /api/v1/users/{name}`` (admins)."""
    return Call("DELETE", f"{API}/users/{_q(name)}", _nothing)


def groups() -> Call[list[GroupView]]:
    """``GET /api/v1/groups``."""
    return Call("GET", f"{API}/groups", _many(_GROUPS))


def group(name: str) -> Call[GroupView]:
    """``GET /api/v1/groups/{name}``."""
    return Call("GET", f"{API}/groups/{_q(name)}", _one(GroupView))


def add_group(name: str) -> Call[GroupView]:
    """``POST /api/v1/groups`` (admins)."""
    return Call("POST", f"{API}/groups", _one(GroupView), body={"name": name})


def remove_group(name: str) -> Call[None]:
    """``DELETE /api/v1/groups/{name}`` (admins)."""
    return Call("DELETE", f"{API}/groups/{_q(name)}", _nothing)


def add_members(group: str, users: Sequence[str]) -> Call[GroupView]:
    """``POST /api/v1/groups/{name}/members`` (admins)."""
    path = f"{API}/groups/{_q(group)}/members"
    return Call("POST", path, _one(GroupView), body={"users": list(users)})


def remove_member(group: str, user: str) -> Call[GroupView]:
    """``DELETE /api/v1/groups/{name}/members/{user}`` (admins)."""
    return Call("DELETE", f"{API}/groups/{_q(group)}/members/{_q(user)}", _one(GroupView))


def tokens(user: str | None, include_ended: bool) -> Call[list[TokenView]]:
    """``GET /api/v1/tokens``: the caller's (an admin's: everyone's, or ``user``'s)."""
    params: Params = {"user": user} if user else {}
    if include_ended:
        params["all"] = "true"
    return Call("GET", f"{API}/tokens", _many(_TOKENS), params=params)


def create_token(spec: TokenSpec) -> Call[CreatedToken]:
    """``POST /api/v1/tokens``: the answer holds the token, shown this once."""
    body = spec.model_dump(mode="json", exclude_none=True)
    return Call("POST", f"{API}/tokens", _one(CreatedToken), body=body)


def revoke_token(token_id: str) -> Call[None]:
    """``DELETE /api/v1/tokens/{id}``."""
    return Call("DELETE", f"{API}/tokens/{_q(token_id)}", _nothing)


def _token_spec(
    user: str | None, role: Role | None, name: str, expires_in: float | None
) -> TokenSpec:
    return TokenSpec(user=user, role=role, name=name, expires_in=expires_in)


# --- the clients' faces


class Accounts:
    """Users, groups and tokens through a blocking ``Client``; every method raises
    ``ClientError`` (``ApiError`` 403 for what the token's role may not do)."""

    def __init__(self, send: Send) -> None:
        self._send = send

    def users(self) -> list[UserView]:
        """Every user."""
        return self._send(users())

    def user(self, name: str) -> UserView:
        """One user; ``ApiError`` 404 if there is none of that name."""
        return self._send(user(name))

    def add_user(self, spec: UserSpec) -> UserView:
        """Add a user (admins)."""
        return self._send(add_user(spec))

    def change_user(self, name: str, change: UserChange) -> UserView:
        """Change a user's role, weight or quotas (admins): the fields set in ``change``; a
        quota set to None is lifted. ``UserChange(weight=2, quota_cpus=8)``."""
        return self._send(change_user(name, change))

    def change_group(self, name: str, change: ShareSettings) -> GroupView:
        """Change a group's weight or quotas (admins), as ``change_user``."""
        return self._send(change_group(name, change))

    def share(self) -> ShareReport:
        """Every user's weight, quotas, decayed usage, share, running and waiting work."""
        return self._send(share())

    def remove_user(self, name: str) -> None:
        """Remove a user and their tokens (admins)."""
        self._send(remove_user(name))

    def groups(self) -> list[GroupView]:
        """Every group with its members."""
        return self._send(groups())

    def group(self, name: str) -> GroupView:
        """One group with its members."""
        return self._send(group(name))

    def add_group(self, name: str) -> GroupView:
        """Add a group (admins)."""
        return self._send(add_group(name))

    def remove_group(self, name: str) -> None:
        """Remove a group (admins)."""
        self._send(remove_group(name))

    def add_members(self, group: str, users: Sequence[str]) -> GroupView:
        """Make users members of a group (admins)."""
        return self._send(add_members(group, users))

    def remove_member(self, group: str, user: str) -> GroupView:
        """Take a user out of a group (admins)."""
        return self._send(remove_member(group, user))

    def tokens(self, user: str | None = None, include_ended: bool = False) -> list[TokenView]:
        """Tokens that work (``include_ended``: all), newest first: the caller's own (an
        admin's: everyone's, or ``user``'s)."""
        return self._send(tokens(user, include_ended))

    def create_token(
        self,
        user: str | None = None,
        role: Role | None = None,
        name: str = "",
        expires_in: float | None = None,
    ) -> CreatedToken:
        """A new token of the caller (an admin: of ``user``); ``.token`` is its secret."""
        return self._send(create_token(_token_spec(user, role, name, expires_in)))

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token: it stops working at once."""
        self._send(revoke_token(token_id))


class AsyncAccounts:
    """Users, groups and tokens through an ``AsyncClient`` (as ``Accounts``)."""

    def __init__(self, send: SendAsync) -> None:
        self._send = send

    async def users(self) -> list[UserView]:
        """Every user."""
        return await self._send(users())

    async def user(self, name: str) -> UserView:
        """One user."""
        return await self._send(user(name))

    async def add_user(self, spec: UserSpec) -> UserView:
        """Add a user (admins)."""
        return await self._send(add_user(spec))

    async def change_user(self, name: str, change: UserChange) -> UserView:
        """Change a user's role, weight or quotas (as ``Accounts.change_user``)."""
        return await self._send(change_user(name, change))

    async def change_group(self, name: str, change: ShareSettings) -> GroupView:
        """Change a group's weight or quotas (as ``Accounts.change_group``)."""
        return await self._send(change_group(name, change))

    async def share(self) -> ShareReport:
        """Every user's standing in fair share (as ``Accounts.share``)."""
        return await self._send(share())

    async def remove_user(self, name: str) -> None:
        """Remove a user and their tokens (admins)."""
        await self._send(remove_user(name))

    async def groups(self) -> list[GroupView]:
        """Every group with its members."""
        return await self._send(groups())

    async def group(self, name: str) -> GroupView:
        """One group with its members."""
        return await self._send(group(name))

    async def add_group(self, name: str) -> GroupView:
        """Add a group (admins)."""
        return await self._send(add_group(name))

    async def remove_group(self, name: str) -> None:
        """Remove a group (admins)."""
        await self._send(remove_group(name))

    async def add_members(self, group: str, users: Sequence[str]) -> GroupView:
        """Make users members of a group (admins)."""
        return await self._send(add_members(group, users))

    async def remove_member(self, group: str, user: str) -> GroupView:
        """Take a user out of a group (admins)."""
        return await self._send(remove_member(group, user))

    async def tokens(self, user: str | None = None, include_ended: bool = False) -> list[TokenView]:
        """Tokens, newest first (as ``Accounts.tokens``)."""
        return await self._send(tokens(user, include_ended))

    async def create_token(
        self,
        user: str | None = None,
        role: Role | None = None,
        name: str = "",
        expires_in: float | None = None,
    ) -> CreatedToken:
        """A new token (as ``Accounts.create_token``)."""
        return await self._send(create_token(_token_spec(user, role, name, expires_in)))

    async def revoke_token(self, token_id: str) -> None:
        """Revoke a token."""
        await self._send(revoke_token(token_id))
