"""Who may call which route: every route of the app has one rule, here, in one table.

A rule says what a route needs (``Need``: which roles may call it at all) and, for a route
that changes work, what it touches (``targets``): a user may change only what is all theirs,
an admin anything. ``corral.api.guard`` enforces the table on every request; a route without a
rule is refused there and fails ``tests/api/test_authz_matrix.py``. Reads are not checked per
object here: a user whose reads are private reads through ``PrivateQueries``, which answers for
other people's work what it answers for a name nobody uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from corral.api import chronos
from corral.api.targets import (
    AppGroup,
    BodyTarget,
    ChronosJob,
    Deployment,
    GroupDocument,
    Job,
    Service,
    Target,
    Task,
    TaskIds,
    TokenOf,
)
from corral.spec.accounts import Role


class Need(StrEnum):
    """What a route needs of its caller."""

    OPEN = "open"  # nothing: no token (probes, the sign-in page, static files)
    READ = "read"  # any person: admin, user, viewer
    WRITE = "write"  # admin or user; a user changes only what is theirs
    ACCOUNT = "account"  # any person, on their own tokens; an admin on anyone's
    ADMIN = "admin"  # an admin: agents and accounts
    AGENT = "agent"  # an agent token (an admin's too, for agents started before agent tokens)


ROLES: Mapping[Need, frozenset[Role]] = {
    Need.READ: frozenset({Role.ADMIN, Role.USER, Role.VIEWER}),
    Need.WRITE: frozenset({Role.ADMIN, Role.USER}),
    Need.ACCOUNT: frozenset({Role.ADMIN, Role.USER, Role.VIEWER}),
    Need.ADMIN: frozenset({Role.ADMIN}),
    Need.AGENT: frozenset({Role.AGENT, Role.ADMIN}),
}

# What a token of a role lacking the need may not do, as a 403 says it.
DENIED: Mapping[Need, str] = {
    Need.READ: "read the cluster",
    Need.WRITE: "submit or change work",
    Need.ACCOUNT: "manage tokens",
    Need.ADMIN: "do this: only an admin may",
    Need.AGENT: "join as an agent",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """What one route needs."""

    need: Need
    target: Target | None = None  # what its path names, that the caller must own
    body: BodyTarget | None = None  # what its body names, that the caller must own
    # The field of its body that may name a user (whose the work or the token is): only an
    # admin may name another.
    owner_field: str | None = None
    cookie: bool = False  # a dashboard route: the token may come from the sign-in cookie
    sign_in: bool = False  # a dashboard page: without a token, go to the sign-in page


OPEN = Rule(Need.OPEN)
READ = Rule(Need.READ)
ADMIN = Rule(Need.ADMIN)
PAGE = Rule(Need.READ, cookie=True, sign_in=True)
JOB = Rule(Need.WRITE, Job())
TASK = Rule(Need.WRITE, Task())
SERVICE = Rule(Need.WRITE, Service("service_id"))
APP = Rule(Need.WRITE, Service("app_id", "app"))
DEPLOYMENT = Rule(Need.WRITE, Deployment())

_ROUTES: dict[tuple[str, str], Rule] = {
    # operators and the API's own documents
    ("GET", "/health"): OPEN,
    ("GET", "/ping"): OPEN,
    ("GET", "/metrics"): READ,
    ("GET", "/api/v1/openapi.json"): READ,
    ("GET", "/api/v1/docs"): READ,
    ("GET", "/docs/oauth2-redirect"): READ,
    ("GET", "/api/v1/info"): READ,
    # jobs, runs, tasks
    ("GET", "/api/v1/jobs"): READ,
    ("POST", "/api/v1/jobs"): Rule(Need.WRITE, owner_field="owner"),
    ("GET", "/api/v1/jobs/{name}"): READ,
    ("PUT", "/api/v1/jobs/{name}"): Rule(Need.WRITE, Job(), owner_field="owner"),
    ("DELETE", "/api/v1/jobs/{name}"): JOB,
    ("POST", "/api/v1/jobs/{name}/kill"): JOB,
    ("GET", "/api/v1/jobs/{name}/runs"): READ,
    ("POST", "/api/v1/jobs/{name}/runs"): JOB,
    ("GET", "/api/v1/jobs/{name}/runs/{number}"): READ,
    ("POST", "/api/v1/jobs/{name}/runs/{number}/kill"): JOB,
    ("GET", "/api/v1/tasks"): READ,
    ("GET", "/api/v1/tasks/{task_id}"): READ,
    ("POST", "/api/v1/tasks/{task_id}/kill"): TASK,
    ("GET", "/api/v1/tasks/{task_id}/logs/{file}"): READ,
    ("GET", "/api/v1/tasks/{task_id}/files"): READ,
    ("GET", "/api/v1/tasks/{task_id}/files/{path:path}"): READ,
    # running a command in a task (corral exec): its owner's debugging, or an admin's
    ("WS", "/api/v1/tasks/{task_id}/exec"): TASK,
    ("GET", "/api/v1/events"): READ,
    # accounting: like every read, only the reader's own where reads are private
    ("GET", "/api/v1/usage"): READ,
    # agents
    ("GET", "/api/v1/agents"): READ,
    ("POST", "/api/v1/agents/{agent_id}/drain"): ADMIN,
    ("POST", "/api/v1/agents/{agent_id}/undrain"): ADMIN,
    ("WS", "/api/v1/agent/channel"): Rule(Need.AGENT),
    # services and deployments
    ("GET", "/api/v1/services"): READ,
    ("POST", "/api/v1/services"): Rule(Need.WRITE, owner_field="owner"),
    ("GET", "/api/v1/services/{service_id:path}"): READ,
    ("PUT", "/api/v1/services/{service_id:path}"): Rule(
        Need.WRITE, Service("service_id"), owner_field="owner"
    ),
    ("DELETE", "/api/v1/services/{service_id:path}"): SERVICE,
    ("POST", "/api/v1/services/{service_id:path}/scale"): SERVICE,
    ("POST", "/api/v1/services/{service_id:path}/restart"): SERVICE,
    ("GET", "/api/v1/services/{service_id:path}/versions"): READ,
    ("GET", "/api/v1/services/{service_id:path}/versions/{version}"): READ,
    ("GET", "/api/v1/services/{service_id:path}/tasks"): READ,
    ("DELETE", "/api/v1/services/{service_id:path}/tasks/{task_id}"): SERVICE,
    ("GET", "/api/v1/deployments"): READ,
    ("GET", "/api/v1/deployments/{deployment_id}"): READ,
    ("DELETE", "/api/v1/deployments/{deployment_id}"): DEPLOYMENT,
    # accounts
    ("GET", "/api/v1/users"): READ,
    ("POST", "/api/v1/users"): ADMIN,
    ("GET", "/api/v1/users/{name}"): READ,
    ("PATCH", "/api/v1/users/{name}"): ADMIN,
    ("DELETE", "/api/v1/users/{name}"): ADMIN,
    ("GET", "/api/v1/groups"): READ,
    ("POST", "/api/v1/groups"): ADMIN,
    ("GET", "/api/v1/groups/{name}"): READ,
    ("PATCH", "/api/v1/groups/{name}"): ADMIN,
    ("DELETE", "/api/v1/groups/{name}"): ADMIN,
    ("GET", "/api/v1/share"): READ,
    ("POST", "/api/v1/groups/{name}/members"): ADMIN,
    ("DELETE", "/api/v1/groups/{name}/members/{user}"): ADMIN,
    ("GET", "/api/v1/tokens"): Rule(Need.ACCOUNT),
    ("POST", "/api/v1/tokens"): Rule(Need.ACCOUNT, owner_field="user"),
    ("GET", "/api/v1/tokens/{token_id}"): Rule(Need.ACCOUNT, TokenOf()),
    ("DELETE", "/api/v1/tokens/{token_id}"): Rule(Need.ACCOUNT, TokenOf()),
    # the dashboard
    ("GET", "/"): PAGE,
    ("GET", "/ui/agents"): PAGE,
    ("GET", "/ui/jobs"): PAGE,
    ("GET", "/ui/jobs/{name}"): PAGE,
    ("GET", "/ui/services"): PAGE,
    ("GET", "/ui/services/{service_id:path}"): PAGE,
    ("GET", "/ui/deployments"): PAGE,
    ("GET", "/ui/usage"): PAGE,
    ("GET", "/ui/share"): PAGE,
    ("GET", "/ui/tasks/{task_id}"): PAGE,
    ("GET", "/ui/tasks/{task_id}/files/{path:path}"): Rule(Need.READ, cookie=True),
    ("GET", "/ui/events"): Rule(Need.READ, cookie=True),
    ("GET", "/ui/login"): OPEN,
    ("POST", "/ui/login"): OPEN,
    ("POST", "/ui/logout"): OPEN,
    ("GET", "/ui/static/{name}"): OPEN,
    # Marathon
    ("GET", "/v2/info"): READ,
    ("GET", "/v2/leader"): READ,
    ("GET", "/v2/deployments"): READ,
    ("DELETE", "/v2/deployments/{deployment_id}"): DEPLOYMENT,
    ("GET", "/v2/queue"): READ,
    ("DELETE", "/v2/queue/{app_id:path}/delay"): APP,
    ("GET", "/v2/apps"): READ,
    ("POST", "/v2/apps"): Rule(Need.WRITE),
    ("GET", "/v2/apps/{app_id:path}"): READ,
    ("PUT", "/v2/apps/{app_id:path}"): APP,
    ("PATCH", "/v2/apps/{app_id:path}"): APP,
    ("DELETE", "/v2/apps/{app_id:path}"): APP,
    ("POST", "/v2/apps/{app_id:path}/restart"): APP,
    ("GET", "/v2/apps/{app_id:path}/tasks"): READ,
    ("DELETE", "/v2/apps/{app_id:path}/tasks"): APP,
    ("DELETE", "/v2/apps/{app_id:path}/tasks/{task_id}"): APP,
    ("GET", "/v2/apps/{app_id:path}/versions"): READ,
    ("GET", "/v2/apps/{app_id:path}/versions/{version}"): READ,
    ("GET", "/v2/tasks"): READ,
    ("POST", "/v2/tasks/delete"): Rule(Need.WRITE, body=TaskIds()),
    ("GET", "/v2/groups"): READ,
    ("POST", "/v2/groups"): Rule(Need.WRITE, body=GroupDocument(None)),
    ("GET", "/v2/groups/{group_id:path}"): READ,
    ("GET", "/v2/groups/{group_id:path}/versions"): READ,
    ("PUT", "/v2/groups/{group_id:path}"): Rule(Need.WRITE, AppGroup(), GroupDocument()),
    ("POST", "/v2/groups/{group_id:path}"): Rule(Need.WRITE, AppGroup(), GroupDocument()),
    ("DELETE", "/v2/groups/{group_id:path}"): Rule(Need.WRITE, AppGroup()),
    ("GET", "/v2/events"): READ,
}

# Chronos, under each of its prefixes.
_CHRONOS_JOB_DOCUMENT = Rule(Need.WRITE, body=ChronosJob(), owner_field="owner")
_CHRONOS: dict[tuple[str, str], Rule] = {
    ("GET", "/jobs"): READ,
    ("GET", "/jobs/search"): READ,
    ("GET", "/graph/csv"): READ,
    ("GET", "/job/stat/{name}"): READ,
    ("POST", "/iso8601"): _CHRONOS_JOB_DOCUMENT,
    ("PUT", "/iso8601"): _CHRONOS_JOB_DOCUMENT,
    ("POST", "/dependency"): _CHRONOS_JOB_DOCUMENT,
    ("PUT", "/dependency"): _CHRONOS_JOB_DOCUMENT,
    ("PUT", "/job/{name}"): JOB,
    ("DELETE", "/job/{name}"): JOB,
    ("DELETE", "/task/kill/{name}"): JOB,
}

RULES: Mapping[tuple[str, str], Rule] = {
    **_ROUTES,
    **{(m, prefix + p): r for (m, p), r in _CHRONOS.items() for prefix in chronos.PREFIXES},
}


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a route, by its method ("WS" for a WebSocket) and its path as declared
    (``/api/v1/jobs/{name}``). HEAD is answered as GET."""
    found = RULES.get((method, path))
    if found is None and method == "HEAD":
        return RULES.get(("GET", path))
    return found


def routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """Every (method, path) the app serves, WebSockets as "WS"."""
    for route in iter_route_contexts(app.routes):
        path = route.path
        if path is None:
            continue
        for method in sorted(route.methods or {"WS"}):
            yield method, path


def missing_rules(app: FastAPI) -> list[str]:
    """The routes of ``app`` that have no rule (there must be none)."""
    return [f"{m} {p}" for m, p in routes(app) if rule_for(m, p) is None]
