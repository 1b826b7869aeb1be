"""Enforcing ``authz.RULES``: one ASGI middleware in front of the app, and one dependency of
every route.

``Authorization`` (the middleware) finds the request's route and its rule, authenticates the
token (401 without a valid one: missing, unknown, expired or revoked), checks the token's role
against the rule's need and the owners of what the path names (403), and hands the route its
caller and the master as that caller may read it. It runs before any body is read, so nobody
without a token gets as far as their body. ``check_body`` (the dependency) then checks what the
body names, once FastAPI has read it. Refusals are answered in each API's own error format.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from corral.api import chronos
from corral.api.auth import CHALLENGE, token_of
from corral.api.authz import DENIED, ROLES, Need, Rule, rule_for
from corral.api.callers import Settings, caller_of, settings_of
from corral.api.limits import error_answer
from corral.api.targets import Touched
from corral.master.accounts import Caller
from corral.spec.accounts import Role
from corral.store.store import StoreUnavailable

log = logging.getLogger(__name__)
COOKIE = "corral_token"  # the dashboard's sign-in cookie
PARTIAL = "x-corral-partial"  # a dashboard page's script asking for its live regions
NO_ROUTE = Rule(Need.READ)  # a path nobody serves: answered 404 or 405, to callers with a token
NO_AUTH = Caller("admin", Role.ADMIN)  # everyone, on a cluster started with --no-auth


class Refusal(Exception):
    """Why a request may not go on: an HTTP status and the message that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- deciding


def _match(app: FastAPI, scope: Scope) -> tuple[RouteContext | None, dict[str, Any]]:
    """The route that serves the request, with its path parameters (None: no route does)."""
    routes: Sequence[RouteContext] | None = getattr(app.state, "authz_routes", None)
    if routes is None:  # the routes are fixed once the app serves: list them once
        routes = app.state.authz_routes = list(iter_route_contexts(app.routes))
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route, dict(child.get("path_params", {}))
    return None, {}


def _authenticate(settings: Settings, conn: HTTPConnection, rule: Rule) -> Caller:
    if not settings.auth_required:
        return NO_AUTH
    token = token_of(conn.headers.get("authorization"))
    if token is None and rule.cookie:
        token = conn.cookies.get(COOKIE) or None
    if token is None:
        raise Refusal(401, "a valid token is required (Authorization: Bearer TOKEN)")
    found = settings.master.accounts.authenticate(token)
    if isinstance(found, str):
        raise Refusal(401, f"a valid token is required: {found}")
    return found


def owns(caller: Caller, touched: Sequence[Touched], settings: Settings, need: Need) -> None:
    """Refuse unless the caller may change everything ``touched`` names: an admin anything, a
    user what is theirs alone. Another person's token is not found (404); another person's
    work is not theirs to change (403; who owns it is said only where reads are public)."""
    if caller.role is Role.ADMIN:
        return
    for t in touched:
        if t.owners == {caller.name}:
            continue
        if need is Need.ACCOUNT:
            raise Refusal(404, f"{t.what} not found")
        if t.owners and settings.reads_all(caller):
            whose = ", ".join(sorted(t.owners))
            raise Refusal(403, f"{t.what} is {whose}'s: only its owner or an admin may change it")
        raise Refusal(403, f"only its owner or an admin may change {t.what}")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def decide(settings: Settings, conn: HTTPConnection, rule: Rule, params: dict[str, Any]) -> Caller:
    """The caller of an authorized request; ``Refusal`` says why it is not."""
    caller = _authenticate(settings, conn, rule)
    if caller.role not in ROLES[rule.need]:
        role = caller.role.value
        raise Refusal(403, f"{_article(role)} {role} token may not {DENIED[rule.need]}")
    if rule.target is not None:
        owns(caller, rule.target.touched(settings.master.queries, params), settings, rule.need)
    if rule.need is Need.AGENT and caller.role is Role.ADMIN and caller.token_id is not None:
        log.warning(
            "an agent joined with an admin token: give agents their own "
            "(corral token create --role agent)"
        )
    return caller


# --- the middleware


class Authorization:
    """ASGI middleware: every HTTP request and WebSocket passes ``decide`` or is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        conn = HTTPConnection(scope)
        method = "WS" if scope["type"] == "websocket" else scope["method"]
        route, params = _match(app, scope)
        rule = NO_ROUTE if route is None else rule_for(method, route.path or "")
        try:
            if rule is None:
                log.error("no authorization rule for %s %s", method, route and route.path)
                raise Refusal(403, "this route has no authorization rule: nobody may call it")
            if rule.need is Need.OPEN:
                await self.app(scope, receive, send)
                return
            settings = settings_of(conn)
            # The token is looked up in the store: off the event loop, as every store call.
            caller = await run_in_threadpool(decide, settings, conn, rule, params)
        except Refusal as refusal:
            await self._refuse(scope, receive, send, refusal, rule)
            return
        except StoreUnavailable as e:
            # Tokens live in the store: with it gone nobody can be told apart.
            await self._refuse(scope, receive, send, Refusal(503, str(e)), rule)
            return
        state = scope.setdefault("state", {})
        state.update(caller=caller, user=caller.name, rule=rule, params=params)
        state["master"] = settings.seen_by(caller)
        await self.app(scope, receive, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, refusal: Refusal, rule: Rule | None
    ) -> None:
        if scope["type"] == "websocket":
            # As HTTP's 401 and 403; a store down is 1013, "try again later" (RFC 6455's
            # registry), so that a client waits instead of taking it for a refusal.
            code = {401: 4401, 503: 1013}.get(refusal.status, 4403)
            await send({"type": "websocket.close", "code": code, "reason": str(refusal)[:120]})
            return
        answer = _answer(HTTPConnection(scope), refusal, rule)
        await answer(scope, receive, send)


def _answer(conn: HTTPConnection, refusal: Refusal, rule: Rule | None) -> Response:
    path = conn.url.path
    if refusal.status == 401 and rule is not None and rule.sign_in:
        if conn.headers.get(PARTIAL) != "1":
            target = quote(path + (f"?{conn.url.query}" if conn.url.query else ""))
            return RedirectResponse(f"/ui/login?next={target}", status_code=303)
    answer: JSONResponse = error_answer(path, refusal.status, str(refusal))
    if refusal.status == 401:
        # Chronos clients (httplib2) answer only a challenge they parse: plain Basic.
        plain = chronos.is_chronos_path(path)
        answer.headers["WWW-Authenticate"] = 'Basic realm="corral"' if plain else CHALLENGE
    return answer


# --- the dependency


async def check_body(conn: HTTPConnection) -> None:
    """What a request's body names must be the caller's to change, as its rule says: the
    objects its ``body`` target finds, and the user its ``owner_field`` names."""
    rule: Rule | None = getattr(conn.state, "rule", None)
    if not isinstance(conn, Request) or rule is None:
        return
    if rule.body is None and rule.owner_field is None:
        return
    caller, settings = caller_of(conn), settings_of(conn)
    if caller.role is Role.ADMIN:
        return
    try:
        body = json.loads(await conn.body())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return  # not JSON: the route refuses it in its own words
    try:
        if rule.owner_field is not None and isinstance(body, dict):
            named = body.get(rule.owner_field)
            if isinstance(named, str) and named not in ("", caller.name):
                why = f"only an admin may name another user ({named!r})"
                raise Refusal(403, f"{rule.owner_field}: {why}")
        if rule.body is not None:
            touched = rule.body.touched(settings.master.queries, body, conn.state.params)
            owns(caller, touched, settings, rule.need)
    except Refusal as refusal:
        raise HTTPException(refusal.status, str(refusal)) from None
