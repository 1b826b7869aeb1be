"""Who is calling, and what of the master they may read: what the routes need of
authorization (``corral.api.guard`` decides it, by ``corral.api.authz``'s rules)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request

from corral.master.accounts import Caller
from corral.master.master import Master
from corral.spec.accounts import Role


@dataclass(frozen=True)
class Settings:
    """What authorization needs of the app: its master and how it was started."""

    master: Master
    auth_required: bool = True
    private_reads: bool = False  # users read only their own work (admins, viewers: all)

    def reads_all(self, caller: Caller) -> bool:
        """Whether a caller reads everyone's work."""
        return not self.private_reads or caller.role in (Role.ADMIN, Role.VIEWER)

    def seen_by(self, caller: Caller) -> Master:
        """The master as ``caller`` may read it."""
        return self.master if self.reads_all(caller) else self.master.private_to(caller.name)


def settings_of(conn: HTTPConnection) -> Settings:
    """The app's authorization settings."""
    found: Settings = conn.app.state.authz
    return found


def caller_of(conn: HTTPConnection) -> Caller:
    """Who sent an authorized request."""
    caller: Caller = conn.state.caller
    return caller


def master_of(conn: HTTPConnection) -> Master:
    """The master as the request's caller may read it (the whole of it for open routes)."""
    return getattr(conn.state, "master", None) or settings_of(conn).master


def new_work_owner(request: Request, requested: str | None) -> tuple[str, str]:
    """Whose new work is, and the group it counts to: the caller's, or whoever the spec names
    (``check_body`` lets only an admin name another user)."""
    owner = requested or caller_of(request).name
    return owner, settings_of(request).master.queries.accounts.primary_group(owner)
