"""The authorization matrix: every route the app serves (read from the app, not listed here) ×
every kind of caller × the owner of what the route names or another user, with reads public
and private.

The callers: an admin, alice (a user, who owns the work the routes name), bob (a user who does
not), a viewer, an agent token, and no token, a revoked token and an expired one. What each may
do follows from the route's rule in ``corral.api.authz``, read as this file's ``expected`` says
(independently of the code that enforces it); the answers must agree, with 0 leaks: no caller
gets past a rule that refuses them, nothing is changed by a refused request, and where reads
are private bob's answers about alice's work are exactly those about work that does not exist.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from corral.api import authz
from corral.api.app import create_app
from corral.api.callers import Settings
from corral.master.master import Master
from corral.store.store import Store
from tests.api.conftest import FixedClock

START = 1_800_000_000.0
LATER = START + 3600  # the expired token lived 60 s
CALLERS = ("admin", "alice", "bob", "viewer", "agent", "none", "revoked", "expired")
NOT_SIGNED_IN = ("none", "revoked", "expired")
STREAMS = {"/api/v1/events", "/v2/events", "/ui/events"}
# Routes that create work under a new name: any user may (what they touch is not anyone's).
CREATES = {("POST", "/api/v1/jobs"), ("POST", "/api/v1/services"), ("POST", "/v2/apps")}
# Path parameters that name a workload (alice's here): hidden from bob where reads are private.
WORK_PARAMS = {"name", "number", "task_id", "service_id", "app_id", "deployment_id", "group_id"}
DIRECTORY = ("/api/v1/users", "/api/v1/groups", "/ui/static")  # not workloads
JOB_SPEC = {"name": "alicejob", "array": "0-1", "task": {"shell": "true"}}
SERVICE_SPEC = {"id": "/alice/web", "instances": 1, "task": {"shell": "true"}}
APP_JSON = {"id": "/alice/web", "cmd": "true", "instances": 1, "cpus": 0.1, "mem": 32}


@dataclass(frozen=True)
class Template:
    """A store holding the accounts and alice's work, copied for every world."""

    db: Path
    tokens: dict[str, str]  # caller -> token
    values: dict[str, str]  # what the routes' parameters name: alice's work and token
    markers: tuple[str, ...]  # strings only an answer about alice's work holds


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _load(store: Store, now: float) -> Master:
    master = Master(store, FixedClock(now))
    master.agents.load()
    master.state.load()
    master.services.load()
    return master


def _token(client: TestClient, **spec: Any) -> dict[str, Any]:
    r = client.post("/api/v1/tokens", json=spec)
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _build(root: Path) -> Template:
    store = Store.in_dir(root)
    store.migrate()
    master = _load(store, START)
    admin = master.ensure_admin_token(root / "admin.token")
    tokens = {"admin": admin}
    with TestClient(create_app(master), headers=bearer(admin)) as api:
        api.post("/api/v1/groups", json={"name": "physics"})
        for name, role in (("alice", "user"), ("bob", "user"), ("viewer", "viewer")):
            assert api.post("/api/v1/users", json={"name": name, "role": role}).status_code == 201
            tokens[name] = _token(api, user=name)["token"]
        api.post("/api/v1/groups/physics/members", json={"users": ["alice"]})
        tokens["agent"] = _token(api, role="agent")["token"]
        revoked = _token(api, user="alice", name="revoked")
        api.delete(f"/api/v1/tokens/{revoked['id']}")
        tokens["revoked"] = revoked["token"]
        tokens["expired"] = _token(api, user="alice", expires_in=60)["token"]
        alices = _token(api, user="alice", name="the one the routes name")
    with TestClient(create_app(master), headers=bearer(tokens["alice"])) as alice:
        assert alice.post("/api/v1/jobs", json=JOB_SPEC).status_code == 201
        deployment = alice.post("/api/v1/services", json=SERVICE_SPEC).json()["id"]
        asyncio.run(master.service_loop.run_once())  # the service's task
        service_task = alice.get("/api/v1/services/alice/web/tasks").json()[0]["id"]
        version = alice.get("/api/v1/services/alice/web/versions").json()[0]["version"]
    store.close()
    values = {
        "job": "alicejob",
        "task": "alicejob.1.0.0",
        "service": "alice/web",
        "service_task": service_task,
        "deployment": deployment,
        "group": "alice",
        "version": version,
        "token": alices["id"],
    }
    markers = ("alicejob", "/alice/web", "alice_web", service_task, deployment, alices["id"])
    return Template(root / "state.db", tokens, values, markers)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return _build(tmp_path_factory.mktemp("authz-template"))


class Worlds:
    """Masters on copies of the template's store (their clock an hour on: the expired token has
    expired), served by one app per way of reading. The app reads its master from its state,
    so each world is a new master put there: building an app's routes takes a fifth of a
    second on its first request, a master on a copied store a few milliseconds."""

    def __init__(self, template: Template, root: Path) -> None:
        self.template, self.root = template, root
        self.count = itertools.count()
        self.clients: dict[bool, TestClient] = {}

    @contextmanager
    def __call__(self, private: bool) -> Iterator[tuple[TestClient, Master]]:
        root = self.root / f"world-{next(self.count)}"
        root.mkdir()
        shutil.copy(self.template.db, root / "state.db")
        store = Store.in_dir(root)
        master = _load(store, LATER)
        client = self.clients.get(private)
        if client is None:
            client = self.clients[private] = TestClient(create_app(master, private_reads=private))
            client.__enter__()
        app = app_of(client)
        app.state.master = master
        app.state.authz = Settings(master, auth_required=True, private_reads=private)
        try:
            yield client, master
        finally:
            store.close()
            shutil.rmtree(root)

    def close(self) -> None:
        for client in self.clients.values():
            client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def worlds(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worlds]:
    found = Worlds(template, tmp_path_factory.mktemp("authz-worlds"))
    yield found
    found.close()


def app_of(client: TestClient) -> FastAPI:
    app = client.app
    assert isinstance(app, FastAPI)
    return app


# --- what a route's path parameters name


def values_of(template: Template, missing: bool) -> dict[str, str]:
    """What the routes' parameters name: alice's work, or (``missing``) names nobody uses."""
    if not missing:
        return template.values
    return {
        **template.values,
        **{k: f"zz-{k}" for k in ("job", "task", "service_task", "deployment", "token")},
        "service": "alice/zz",
        "group": "zz",
    }


def path_values(path: str, template: Template, missing: bool = False) -> dict[str, str]:
    """A value for each parameter of ``path``: alice's work (``missing``: names nobody uses)."""
    v = values_of(template, missing)
    in_service = path.startswith(("/api/v1/services", "/v2/apps", "/ui/services"))
    samples = {
        "number": "1",
        "task_id": v["service_task"] if in_service else v["task"],
        "file": "stdout",
        "path": "out.txt",
        "agent_id": "no-such-agent",
        "service_id": v["service"],
        "app_id": v["service"],
        "deployment_id": v["deployment"],
        "group_id": v["group"],
        "version": v["version"],
        "token_id": v["token"],
        "user": "alice",
    }
    accounts = {"/api/v1/users": "alice", "/api/v1/groups": "physics", "/ui/static": "corral.css"}
    found = {}
    for param in re.findall(r"{(\w+)(?::path)?}", path):
        if param == "name":
            found[param] = next((n for p, n in accounts.items() if path.startswith(p)), v["job"])
        elif param in samples:
            found[param] = samples[param]
        else:
            pytest.fail(f"add a sample value for {{{param}}} of {path}")
    return found


def url_of(path: str, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)(?::path)?}", lambda m: values[m[1]], path)


def body_of(method: str, path: str, template: Template) -> Any:
    """A body of the right shape, naming alice's work where the route's body names any."""
    tail = path.removeprefix("/v1").removeprefix("/scheduler")
    if (method, path) == ("POST", "/api/v1/jobs"):
        return {"name": "newjob", "task": {"shell": "true"}}
    if (method, path) == ("PUT", "/api/v1/jobs/{name}"):
        return {**JOB_SPEC, "description": "changed"}
    if (method, path) == ("POST", "/api/v1/services"):
        return {**SERVICE_SPEC, "id": "/new/web"}
    if (method, path) == ("PUT", "/api/v1/services/{service_id:path}"):
        return {**SERVICE_SPEC, "instances": 2}
    if path == "/api/v1/services/{service_id:path}/scale":
        return {"instances": 2}
    if (method, path) == ("POST", "/v2/apps"):
        return {**APP_JSON, "id": "/new/app"}
    if path.startswith("/v2/apps/"):
        return {"instances": 2}
    if path == "/v2/tasks/delete":
        return {"ids": [template.values["service_task"]]}
    if path.startswith("/v2/groups"):
        return {"id": "/alice", "apps": [{**APP_JSON, "id": "web"}]}
    if tail in ("/iso8601", "/dependency") and path != tail:
        return {"name": "alicejob", "command": "true", "schedule": "R1//PT1M"}
    if path == "/api/v1/users":
        return {"name": "newuser"}
    if path == "/api/v1/groups":
        return {"name": "newgroup"}
    if path == "/api/v1/groups/{name}/members":
        return {"users": ["bob"]}
    if path == "/api/v1/tokens":
        return {"name": "new"}
    return None


# --- what should happen


def expected(rule: authz.Rule, caller: str, method: str, path: str, private: bool) -> str:
    """ "ok" (not refused), "401", "403", "404", "hidden" (as for work nobody has), or "any"
    (an open route)."""
    need = rule.need
    if need is authz.Need.OPEN:
        return "any"
    if caller in NOT_SIGNED_IN:
        return "303" if rule.sign_in else "401"  # a page sends the browser to sign in
    if need is authz.Need.AGENT:
        return "ok" if caller in ("agent", "admin") else "403"
    if caller == "agent":
        return "403"
    params = set(re.findall(r"{(\w+)(?::path)?}", path))
    if need is authz.Need.READ:
        names_work = bool(params & WORK_PARAMS) and not path.startswith(DIRECTORY)
        return "hidden" if private and caller == "bob" and names_work else "ok"
    if need is authz.Need.ADMIN:
        return "ok" if caller == "admin" else "403"
    if need is authz.Need.ACCOUNT:
        return "404" if "token_id" in params and caller in ("bob", "viewer") else "ok"
    assert need is authz.Need.WRITE
    if caller in ("admin", "alice"):
        return "ok"
    return "ok" if caller == "bob" and (method, path) in CREATES else "403"


def call(client: TestClient, template: Template, method: str, path: str, caller: str,
         missing: bool = False) -> tuple[int, str]:  # fmt: skip
    """Send the route's request as ``caller``; answers its status and body."""
    values = path_values(path, template, missing)
    url = url_of(path, values)
    headers = bearer(template.tokens[caller]) if caller in template.tokens else {}
    if method == "WS":
        try:
            with client.websocket_connect(url, headers=headers):
                return 101, ""
        except WebSocketDisconnect as e:
            return {4401: 401, 4403: 403}.get(e.code, e.code), e.reason or ""
    if path in STREAMS:
        with client.stream(method, url, headers=headers) as r:
            return r.status_code, "" if r.status_code == 200 else r.read().decode()
    body = body_of(method, path, template)
    r = client.request(method, url, headers=headers, json=body, follow_redirects=False)
    return r.status_code, r.text


def fingerprint(master: Master) -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    accounts = master.queries.accounts
    return (
        master.queries.last_event_id(),
        [(u.name, u.role, u.groups) for u in accounts.users()],
        [(g.name, g.members) for g in accounts.groups()],
        [(t.id, t.state) for t in accounts.tokens()],
    )


def check(outcome: str, status: int, text: str, where: str) -> None:
    if outcome == "any":
        assert status < 500, where
    elif outcome == "ok":
        assert status not in (401, 403) and status < 500, f"{where}: {status} {text[:300]}"
    else:
        assert status == int(outcome), f"{where}: expected {outcome}, got {status} {text[:300]}"


def normalized(text: str, template: Template, missing: bool) -> str:
    """An answer with the names it was asked about taken out."""
    v = values_of(template, missing)
    names = [*v.values(), "/" + v["service"], v["service"].replace("/", "_")]
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, "<NAME>")
    return text


# --- the tests


def test_every_route_has_a_rule(worlds: Worlds) -> None:
    with worlds(False) as (client, _):
        assert authz.missing_rules(app_of(client)) == []


def test_a_route_without_a_rule_fails_the_check_and_is_refused(worlds: Worlds) -> None:
    with worlds(False) as (_, master):
        app = create_app(master)  # an app of its own: the route added stays in this test
        app.add_api_route("/api/v1/unguarded", lambda: {"secret": 1}, methods=["GET"])
        assert authz.missing_rules(app) == ["GET /api/v1/unguarded"]
        with TestClient(app) as client:
            r = client.get("/api/v1/unguarded", headers=bearer(worlds.template.tokens["admin"]))
        assert r.status_code == 403 and "secret" not in r.text


def test_the_rules_read_as_they_should(worlds: Worlds) -> None:
    """A second look at the table: what changes is never a mere read; agents and accounts are
    changed by admins only; only probes and the sign-in page are open."""
    with worlds(False) as (client, _):
        routes = list(authz.routes(app_of(client)))
    open_paths = set()
    for method, path in routes:
        rule = authz.rule_for(method, path)
        assert rule is not None
        if method not in ("GET", "HEAD", "WS"):
            assert rule.need is not authz.Need.READ, f"{method} {path} changes but is a read"
            if path.startswith(("/api/v1/agents", "/api/v1/users", "/api/v1/groups")):
                assert rule.need is authz.Need.ADMIN, f"{method} {path}"
        if rule.need is authz.Need.OPEN:
            open_paths.add(path)
    assert open_paths == {"/health", "/ping", "/ui/login", "/ui/logout", "/ui/static/{name}"}


def refusals_change_nothing(
    client: TestClient, master: Master, template: Template, route: tuple[str, str], private: bool
) -> int:
    """Every caller the route's rule refuses (or, reading alice's work, is not shown it) is
    answered so, and nothing changes; answers how many calls were checked."""
    method, path = route
    rule = authz.rule_for(method, path)
    assert rule is not None
    before, checked = fingerprint(master), 0
    statuses: dict[str, int] = {}
    for caller in CALLERS:
        outcome = expected(rule, caller, method, path, private)
        if outcome in ("ok", "any") and method not in ("GET", "HEAD"):
            continue  # let in to change something: in a world of its own
        where = f"{caller} {method} {path}"
        status, text = call(client, template, method, path, caller)
        if outcome == "hidden":
            missing = call(client, template, method, path, caller, missing=True)
            assert missing[0] == status, f"{where}: {status} but {missing[0]} for no work"
            assert normalized(text, template, False) == normalized(missing[1], template, True), (
                f"{where} tells alice's work from none"
            )
        else:
            check(outcome, status, text, where)
        statuses[caller] = status
        checked += 1
    assert fingerprint(master) == before, f"a refused {method} {path} changed something"
    if method == "GET" and rule.need is authz.Need.READ:
        # The owner (and, where reads are public, anyone) reads what an admin reads.
        readers = ("alice", "viewer") if private else ("alice", "bob", "viewer")
        assert {statuses[c] for c in readers} == {statuses["admin"]}, f"{path}: {statuses}"
    return checked


@pytest.mark.parametrize("private", [False, True], ids=["public-reads", "private-reads"])
def test_every_route_answers_every_caller_as_its_rule_says(
    template: Template, worlds: Worlds, private: bool
) -> None:
    checked = 0
    with worlds(private) as (shared, master):
        routes = list(authz.routes(app_of(shared)))
        for route in routes:
            checked += refusals_change_nothing(shared, master, template, route, private)
    for method, path in routes:
        rule = authz.rule_for(method, path)
        assert rule is not None
        for caller in CALLERS:
            outcome = expected(rule, caller, method, path, private)
            if outcome in ("ok", "any") and method not in ("GET", "HEAD"):
                with worlds(private) as (client, _):
                    status, text = call(client, template, method, path, caller)
                check(outcome, status, text, f"{caller} {method} {path}")
                checked += 1
    assert checked == len(routes) * len(CALLERS)


@pytest.mark.parametrize("private", [False, True], ids=["public-reads", "private-reads"])
def test_lists_show_bob_none_of_alices_work_where_reads_are_private(
    template: Template, worlds: Worlds, private: bool
) -> None:
    with worlds(private) as (client, _):
        lists = []
        for method, path in authz.routes(app_of(client)):
            rule = authz.rule_for(method, path)
            assert rule is not None
            if method == "GET" and rule.need is authz.Need.READ and "{" not in path:
                lists.append(path)
        assert len(lists) > 15
        for path in lists:
            if path in STREAMS:
                continue
            status, text = call(client, template, "GET", path, "bob")
            assert status == 200, f"{path}: {status}"
            leaked = [m for m in template.markers if m in text]
            if private:
                assert not leaked, f"bob sees {leaked} of alice's work in {path}"
            elif path in ("/api/v1/jobs", "/api/v1/services", "/v2/apps", "/scheduler/jobs"):
                assert leaked, f"{path} should show bob alice's work where reads are public"
