"""What a route that changes something touches, and whose it is.

A target reads a route's path parameters (or, for ``BodyTarget``\\ s, its JSON body) and answers
the objects it would change with their owners: ``authorize`` then lets a user change only what
is all theirs. Nothing found means nothing to guard: the route answers its own 404, or creates.
Every read goes through the master's unfiltered ``Queries``: whose a name is does not depend on
who asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from corral.master.queries import Queries
from corral.spec.marathon import MarathonInvalid, group_to_specs
from corral.spec.services import normalize_service_id

Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Touched:
    """An object a request would change, and its owners (none: only an admin may)."""

    what: str  # "job 'sweep'", as messages name it
    owners: frozenset[str]


class Target(Protocol):
    """The objects named by a route's path parameters."""

    def touched(self, q: Queries, params: Params) -> list[Touched]:
        """The objects that exist, with their owners."""
        ...


class BodyTarget(Protocol):
    """The objects named in a request's JSON body (read leniently: a body that is not what
    the route wants names nothing, and the route refuses it itself)."""

    def touched(self, q: Queries, body: Any, params: Params) -> list[Touched]:
        """The objects that exist, with their owners."""
        ...


def _workload(q: Queries, kind: str, name: str) -> list[Touched]:
    owner = q.owner_of(name)
    return [] if owner is None else [Touched(f"{kind} {name!r}", frozenset({owner}))]


def _service_id(raw: str) -> str | None:
    try:
        return normalize_service_id(raw)
    except ValueError:
        return None


def _under(group: str, sid: str) -> bool:
    return group == "/" or sid == group or sid.startswith(group.rstrip("/") + "/")


def _group(q: Queries, raw: str) -> list[Touched]:
    """Every service under a Marathon group."""
    gid = "/" if not raw.strip("/") else _service_id(raw)
    if gid is None:
        return []
    return [t for sid in sorted(q.service_ids()) if _under(gid, sid) for t in _app(q, sid)]


def _app(q: Queries, sid: str) -> list[Touched]:
    return _workload(q, "app", sid)


@dataclass(frozen=True, slots=True)
class Job:
    """The job a path parameter names."""

    param: str = "name"

    def touched(self, q: Queries, params: Params) -> list[Touched]:
        """The job, if there is one of that name."""
        name = str(params[self.param])
        return [] if name.startswith("/") else _workload(q, "job", name)


@dataclass(frozen=True, slots=True)
class Task:
    """The task a path parameter names."""

    param: str = "task_id"

    def touched(self, q: Queries, params: Params) -> list[Touched]:
        """The task, if there is one of that id."""
        row = q.task_row(str(params[self.param]))
        if row is None:
            return []
        return [Touched(f"task {row['id']!r}", frozenset({str(row["owner"])}))]


@dataclass(frozen=True, slots=True)
class Service:
    """The service (``kind``: Marathon's "app") a path parameter names."""

    param: str
    kind: str = "service"

    def touched(self, q: Queries, params: Params) -> list[Touched]:
        """The service, if there is one of that id."""
        sid = _service_id(str(params[self.param]))
        return [] if sid is None else _workload(q, self.kind, sid)


@dataclass(frozen=True, slots=True)
class Deployment:
    """The deployment a path parameter names: the services it changes are what it touches."""

    param: str = "deployment_id"

    def touched(self, q: Queries, params: Params) -> list[Touched]:
        """The deployment with the owners of its services, if it exists."""
        dep = str(params[self.param])
        if q.running_deployment(dep) is None and q.deployment_row(dep) is None:
            return []
        return [Touched(f"deployment {dep!r}", frozenset(q.owners_of_deployment(dep)))]


@dataclass(frozen=True, slots=True)
class AppGroup:
    """Every app under the Marathon group a path parameter names."""

    param: str = "group_id"

    def touched(self, q: Queries, params: Params) -> list[Touched]:
        """The services under the group."""
        return _group(q, str(params[self.param]))


@dataclass(frozen=True, slots=True)
class TokenOf:
    """The token a path parameter names: its user is its owner."""

    param: str = "token_id"

    def touched(self, q: Queries, params: Params) -> list[Touched]:
        """The token, if there is one of that id."""
        token = q.accounts.token(str(params[self.param]))
        return [] if token is None else [Touched(f"token {token.id!r}", frozenset({token.user}))]


# --- in the body


@dataclass(frozen=True, slots=True)
class ChronosJob:
    """The job a Chronos job document names (posting it replaces the job of that name)."""

    def touched(self, q: Queries, body: Any, params: Params) -> list[Touched]:
        """The job, if the body names one that exists."""
        name = body.get("name") if isinstance(body, dict) else None
        return _workload(q, "job", name) if isinstance(name, str) and name else []


@dataclass(frozen=True, slots=True)
class TaskIds:
    """The tasks of Marathon's ``{"ids": [...]}``."""

    def touched(self, q: Queries, body: Any, params: Params) -> list[Touched]:
        """The tasks that exist."""
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return []
        found = [Task("id").touched(q, {"id": i}) for i in ids if isinstance(i, str)]
        return [t for ts in found for t in ts]


@dataclass(frozen=True, slots=True)
class GroupDocument:
    """What a Marathon group document posted to a group changes: every app under the group it
    names (its ``id``, else the path's; a PUT deletes those it leaves out) and every app in
    it."""

    param: str | None = "group_id"  # None: posted to the root

    def touched(self, q: Queries, body: Any, params: Params) -> list[Touched]:
        """The services under the group and those the document names, that exist."""
        if not isinstance(body, dict):
            return []
        base = "/" if self.param is None else str(params[self.param])
        gid = body.get("id", base)
        found = _group(q, gid) if isinstance(gid, str) else []
        try:
            specs = group_to_specs(body, base if base.startswith("/") else "/" + base)
        except MarathonInvalid:
            specs = []
        return found + [t for s in specs for t in _app(q, s.id)]
