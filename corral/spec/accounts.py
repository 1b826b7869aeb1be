"""Accounts: users, groups, roles and tokens, as the API takes and answers them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"
DEFAULT_GROUP = "users"  # every cluster has it: a user added without --group belongs to it
MAX_TOKEN_LIFETIME = 10 * 365 * 86400.0  # ten years: longer is a mistake, not a policy

AccountName = Annotated[
    str,
    Field(
        pattern=ACCOUNT_PATTERN,
        description="Letters, digits, '_', '.', '@', '-'; starts with a letter or digit; "
        "100 at most.",
    ),
]


class Role(StrEnum):
    """What an account (and a token of it) may do."""

    ADMIN = "admin"  # everything: every workload, agents, accounts
    USER = "user"  # submits work and changes their own; reads what reads allow
    VIEWER = "viewer"  # reads everything, changes nothing
    AGENT = "agent"  # joins as an agent: the agent channel and nothing else


_HUMAN_RANK = {Role.VIEWER: 1, Role.USER: 2, Role.ADMIN: 3}


def may_hold(account: Role, token: Role) -> bool:
    """Whether an account of role ``account`` may hold a token of role ``token``: a token may
    narrow its account's role (a user's read-only token for a wall screen), never widen it;
    agent tokens belong to admins and to agent accounts."""
    if token is Role.AGENT:
        return account in (Role.ADMIN, Role.AGENT)
    if account is Role.AGENT:
        return False
    return _HUMAN_RANK[token] <= _HUMAN_RANK[account]


def effective_role(account: Role, token: Role) -> Role | None:
    """The role a token acts with now (None: none). A token made before its account was given a
    lesser role acts with the lesser one."""
    if may_hold(account, token):
        return token
    if Role.AGENT in (account, token):
        return None
    return account


class UserSpec(BaseModel):
    """A new user."""

    model_config = ConfigDict(extra="forbid")

    name: AccountName
    role: Role = Role.USER
    group: AccountName = Field(
        DEFAULT_GROUP, description="The primary group: the group their work is counted to."
    )
    groups: list[AccountName] = Field(
        default_factory=list, max_length=100, description="Other groups they belong to."
    )


# A ratio of weights beyond 10^6 is a typo, not a policy; a user's weight times their group's
# stays well within a float.
MIN_WEIGHT, MAX_WEIGHT = 1e-3, 1e3
MAX_QUOTA = 2**53  # beyond any cluster, and still exact as a JSON number


class Quota(BaseModel):
    """Hard caps on what an account holds at once (placed tasks); None: no cap."""

    cpus: float | None = Field(None, description="CPUs (0.001 steps).")
    mem: int | None = Field(None, description="Memory, MiB.")
    gpus: int | None = Field(None, description="GPUs.")
    tasks: int | None = Field(None, description="Tasks holding resources (placed or running).")


class ShareSettings(BaseModel):
    """A change of a user's or a group's fair-share settings: the fields given are set, the
    others left as they are; a quota given as null is lifted, a weight given as null is 1."""

    model_config = ConfigDict(extra="forbid")

    weight: float | None = Field(
        None,
        ge=MIN_WEIGHT,
        le=MAX_WEIGHT,
        allow_inf_nan=False,
        description="Fair-share weight, 0.001 to 1000 (1 by default): twice the weight, twice "
        "the share.",
    )
    quota_cpus: float | None = Field(None, ge=0, le=MAX_QUOTA, allow_inf_nan=False)
    quota_mem: int | None = Field(None, ge=0, le=MAX_QUOTA, description="MiB.")
    quota_gpus: int | None = Field(None, ge=0, le=MAX_QUOTA)
    quota_tasks: int | None = Field(
        None, ge=0, le=MAX_QUOTA, description="Tasks holding resources at once."
    )


class UserChange(ShareSettings):
    """A change of a user: their role and fair-share settings (see ``ShareSettings``)."""

    role: Role | None = None


class UserView(BaseModel):
    """A user."""

    name: str
    role: Role
    group: str = Field(description="The primary group.")
    groups: list[str] = Field(description="Every group they belong to, the primary one first.")
    created_at: datetime
    tokens: int = Field(0, description="Tokens that work now.")
    weight: float = Field(1.0, description="Fair-share weight.")
    quota: Quota = Field(default_factory=Quota, description="Hard caps; null: none.")


class GroupSpec(BaseModel):
    """A new group."""

    model_config = ConfigDict(extra="forbid")

    name: AccountName


class GroupView(BaseModel):
    """A group and its members."""

    name: str
    members: list[str]
    created_at: datetime
    weight: float = Field(1.0, description="Fair-share weight of its members' work.")
    quota: Quota = Field(
        default_factory=Quota, description="Hard caps on its members' work together; null: none."
    )


class MembersChange(BaseModel):
    """Users to add to a group or to remove from it."""

    model_config = ConfigDict(extra="forbid")

    users: list[AccountName] = Field(min_length=1, max_length=1000)


class TokenSpec(BaseModel):
    """A new token."""

    model_config = ConfigDict(extra="forbid")

    user: AccountName | None = Field(None, description="Whose token: the caller if not given.")
    role: Role | None = Field(
        None, description="Defaults to the user's role; may be narrower, never wider."
    )
    name: str = Field("", max_length=200, description="What it is for, to recognise it later.")
    expires_in: float | None = Field(
        None,
        gt=0,
        le=MAX_TOKEN_LIFETIME,
        description="Seconds until it stops working; never if not given.",
    )


TokenState = Literal["active", "expired", "revoked"]


class TokenView(BaseModel):
    """A token, without its secret."""

    id: str
    user: str
    role: Role
    name: str
    state: TokenState
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = Field(None, description="When it was last used, to the minute.")


class CreatedToken(TokenView):
    """A token just created: the only answer that holds its secret."""

    token: str = Field(description="The secret: shown once, stored only hashed.")
