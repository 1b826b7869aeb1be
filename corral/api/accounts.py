"""The native API of accounts: users, groups and tokens. Who may call each route is in
``corral.api.authz`` (users and groups: admins change, everyone reads; tokens: each person
their own, an admin anyone's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from corral.api.callers import caller_of, master_of
from corral.master.master import Master
from corral.spec.accounts import (
    CreatedToken,
    GroupSpec,
    GroupView,
    MembersChange,
    Role,
    ShareSettings,
    TokenSpec,
    TokenView,
    UserChange,
    UserSpec,
    UserView,
)
from corral.spec.share import ShareReport

router = APIRouter(prefix="/api/v1")
MasterDep = Annotated[Master, Depends(master_of)]


def _user(master: Master, name: str) -> UserView:
    found = master.queries.accounts.user(name)
    if found is None:
        raise HTTPException(404, f"user {name!r} not found")
    return found


def _group(master: Master, name: str) -> GroupView:
    found = master.queries.accounts.group(name)
    if found is None:
        raise HTTPException(404, f"group {name!r} not found")
    return found


# --- users


@router.get("/users")
def list_users(master: MasterDep) -> list[UserView]:
    """Every user, with their role, groups and how many tokens of theirs work."""
    return master.queries.accounts.users()


@router.post("/users", status_code=201)
def add_user(spec: UserSpec, master: MasterDep) -> UserView:
    """Add a user (admins). Give them a token next: ``POST /api/v1/tokens``."""
    master.accounts.add_user(spec)
    return _user(master, spec.name)


@router.get("/users/{name}")
def get_user(name: str, master: MasterDep) -> UserView:
    """One user."""
    return _user(master, name)


@router.patch("/users/{name}")
def change_user(name: str, change: UserChange, master: MasterDep) -> UserView:
    """Change a user's role, fair-share weight or quotas (admins): the fields given are set;
    a quota given as null is lifted, a weight given as null is 1 again."""
    master.accounts.change_user(name, change)
    return _user(master, name)


@router.delete("/users/{name}", status_code=204)
def remove_user(name: str, master: MasterDep) -> Response:
    """Remove a user and their tokens (admins); their work stays."""
    master.accounts.remove_user(name)
    return Response(status_code=204)


# --- groups


@router.get("/groups")
def list_groups(master: MasterDep) -> list[GroupView]:
    """Every group with its members."""
    return master.queries.accounts.groups()


@router.post("/groups", status_code=201)
def add_group(spec: GroupSpec, master: MasterDep) -> GroupView:
    """Add a group (admins)."""
    master.accounts.add_group(spec.name)
    return _group(master, spec.name)


@router.get("/groups/{name}")
def get_group(name: str, master: MasterDep) -> GroupView:
    """One group with its members."""
    return _group(master, name)


@router.patch("/groups/{name}")
def change_group(name: str, change: ShareSettings, master: MasterDep) -> GroupView:
    """Change a group's fair-share weight or quotas (admins), as for a user. Its quotas cap
    its users' work together; its weight multiplies theirs."""
    master.accounts.change_group(name, change)
    return _group(master, name)


@router.delete("/groups/{name}", status_code=204)
def remove_group(name: str, master: MasterDep) -> Response:
    """Remove a group (admins); refused while it is someone's primary group."""
    master.accounts.remove_group(name)
    return Response(status_code=204)


@router.post("/groups/{name}/members")
def add_members(name: str, change: MembersChange, master: MasterDep) -> GroupView:
    """Make users members of a group (admins)."""
    master.accounts.add_members(name, change.users)
    return _group(master, name)


@router.delete("/groups/{name}/members/{user}")
def remove_member(name: str, user: str, master: MasterDep) -> GroupView:
    """Take a user out of a group (admins); not out of their primary group."""
    master.accounts.remove_members(name, [user])
    return _group(master, name)


# --- fair share


@router.get("/share")
def fair_share(master: MasterDep) -> ShareReport:
    """Every user's weight, quotas, decayed usage, share, running and waiting work, next in
    line first (what Slurm's sshare gives)."""
    return master.queries.share()


# --- tokens


@router.get("/tokens")
def list_tokens(
    request: Request,
    master: MasterDep,
    user: str | None = None,
    all: Annotated[bool, Query(description="Expired and revoked ones too.")] = False,
) -> list[TokenView]:
    """Tokens, newest first: the caller's own (an admin's: everyone's, or ``user``'s)."""
    caller = caller_of(request)
    if caller.role is not Role.ADMIN:
        if user not in (None, caller.name):
            return []
        user = caller.name
    found = master.queries.accounts.tokens(user)
    return found if all else [t for t in found if t.state == "active"]


@router.post("/tokens", status_code=201)
def create_token(spec: TokenSpec, request: Request, master: MasterDep) -> CreatedToken:
    """A new token, of the caller (an admin: of ``user``), of the user's role or a narrower
    one. The answer holds the token: it is shown this once."""
    user = spec.user or caller_of(request).name
    return master.accounts.create_token(user, spec.role, spec.name, spec.expires_in)


@router.get("/tokens/{token_id}")
def get_token(token_id: str, master: MasterDep) -> TokenView:
    """One token (never its secret)."""
    found = master.queries.accounts.token(token_id)
    if found is None:
        raise HTTPException(404, f"token {token_id!r} not found")
    return found


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: str, master: MasterDep) -> Response:
    """Revoke a token: it stops working at once."""
    master.accounts.revoke_token(token_id)
    return Response(status_code=204)
