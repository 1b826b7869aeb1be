"""The dashboard: server-rendered pages at ``/`` and ``/ui/...``, a login page, the static files,
and the event stream the pages follow.

Pages read through the native API's own route functions, so they show exactly what the API
answers to the person signed in (their own work only, where reads are private); every action a
page offers is a call of the native API from the browser, with the token as ``Authorization:
Bearer``. A browser's navigations and its ``EventSource`` cannot send that header, so these
routes also take the token from the ``corral_token`` cookie that the login page sets (their
rules in ``corral.api.authz`` say so); the cookie is only ever honoured for these read-only
routes. Lists of work show the signed-in person's own first (``who=mine``), everyone's on
asking (``who=all``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    StreamingResponse,
)
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from corral import __version__
from corral.api import events, pages, v1
from corral.api import services as service_api
from corral.api import usage as usage_api
from corral.api.callers import caller_of, master_of, settings_of
from corral.api.guard import COOKIE, PARTIAL
from corral.api.render import task_view
from corral.master.accounts import UNKNOWN_TOKEN, Caller
from corral.master.master import Master, NotFound, Unavailable
from corral.master.usage import OUTCOMES
from corral.spec.accounts import Role
from corral.spec.states import AgentState, TaskState
from corral.spec.views import LogChunk
from corral.ui import STATIC, TEMPLATES, graph, summary

T = TypeVar("T")
RUNS_SHOWN = 20  # newest runs listed on a job's page
RUNS_WITH_TASKS = 5  # of which this many list their tasks
TASKS_PER_RUN = 200  # a page of a run's tasks
FAILURES_SHOWN = 8  # the newest failures on the overview
VERSIONS_SHOWN = 20  # newest versions listed on a service's page
TASKS_SHOWN = 200  # a page of a service's tasks
ENDED_DEPLOYMENTS_SHOWN = 5  # ended deployments on a service's page
ENDED_DEPLOYMENTS_LISTED = 20  # ended deployments on the deployments page
# The windows the usage page offers: key -> (label, length).
USAGE_WINDOWS = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(days=1)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
STATIC_FILES = frozenset(p.name for p in STATIC.iterdir() if p.suffix in STATIC_TYPES)

router = APIRouter(include_in_schema=False)


# --- formatting for the templates


def when(value: datetime | None, style: str = "ago") -> Markup:
    """A timestamp as ``<time>``: UTC on the server; once the page's script runs, relative
    (``ago``: "5s ago"), the local time of day (``clock``) or the local date and time
    (``date``)."""
    if value is None:
        return Markup('<span class="muted">—</span>')
    utc = value.astimezone(UTC)
    return Markup('<time datetime="{}" data-rel="{}">{}</time>').format(
        utc.isoformat().replace("+00:00", "Z"), style, utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def mib(value: float) -> str:
    """MiB in the largest unit that keeps the number above 1."""
    for unit, size in (("TiB", 1024 * 1024), ("GiB", 1024)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:g} MiB"


def num(value: float) -> str:
    """A count of cpus or gpus without a useless ``.0``."""
    return f"{round(value, 3):g}"


def took(start: datetime | None, end: datetime | None) -> str:
    """How long something ran, or ``""`` if it has not started."""
    if start is None:
        return ""
    seconds = ((end or datetime.now(UTC)) - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m {sec:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def hours(value: float) -> str:
    """Hours to the thousandth; a little less than that is said so, not shown as zero."""
    if 0 < value < 0.0005:
        return "< 0.001"
    return f"{value:,.3f}"


TEMPLATE_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATE_ENV.filters.update(when=when, mib=mib, num=num, hours=hours)
TEMPLATE_ENV.globals.update(
    took=took,
    progress_of=summary.progress,
    TaskState=TaskState,
    AgentState=AgentState,
    version=__version__,
)


# --- who is asking


def _auth_required(request: Request) -> bool:
    return settings_of(request).auth_required


def _safe_next(target: str) -> str:
    """Where to go after signing in: a path on this site only, never another host."""
    # Browsers read "//host" and "/\host" as another host; control characters split headers.
    local = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if local and target.isprintable() else "/"


@dataclass(frozen=True)
class Page:
    """A page request that passed authorization, and the master as its caller may read it."""

    request: Request
    master: Master
    caller: Caller
    since: int  # the newest event before the page read anything: its live stream starts here

    def can_change(self, owner: str) -> bool:
        """Whether the signed-in person may change work of ``owner`` (the page then offers
        its actions)."""
        role = self.caller.role
        return role is Role.ADMIN or (role is Role.USER and owner == self.caller.name)

    def whose(self, asked: str) -> str:
        """Whose work a list shows: ``asked`` if it is "mine" or "all"; else the person's own
        if they may submit any, everyone's for a viewer."""
        if asked in ("mine", "all"):
            return asked
        return "all" if self.caller.role is Role.VIEWER else "mine"

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """The page, or only its live regions when the page's script asks for them."""
        html = TEMPLATE_ENV.get_template(template).render(
            partial=self.request.headers.get(PARTIAL) == "1",
            user=self.caller.name,
            role=self.caller.role.value,
            auth_required=_auth_required(self.request),
            since=self.since,
            can_change=self.can_change,
            leader=self.master.leader_url,
            **context,
        )
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def missing(self, exc: HTTPException | NotFound, nav: str = "jobs") -> HTMLResponse:
        """The API's answer that something does not exist, as a page of the ``nav`` section
        (``jobs`` or ``services``) that links back to its list."""
        if isinstance(exc, NotFound):
            status, message = 404, str(exc.args[0])
        else:
            status, message = exc.status_code, exc.detail
        return self.render("error.html", status=status, nav=nav, message=message, back=f"/ui/{nav}")


def _page(request: Request) -> Page:
    master = master_of(request)
    return Page(request, master, caller_of(request), master.queries.last_event_id())


PageDep = Annotated[Page, Depends(_page)]


def _found(call: Callable[[], T]) -> T | None:
    """The API's answer, or None where it answers 404."""
    try:
        return call()
    except HTTPException as exc:
        if exc.status_code == 404:
            return None
        raise


# --- pages


@router.get("/")
def overview(page: PageDep) -> HTMLResponse:
    """Resources allocated vs total, tasks and agents by state, recent failures."""
    master = page.master
    agents = v1.list_agents(master)
    rows = [summary.job_row(j) for j in v1.page_of_jobs(master)[0]]
    services = [summary.service_row(s) for s in service_api.list_services(master)]
    live = summary.connected(agents)
    # Counts kept as tasks change, and the newest failures by index: the page costs the
    # same with 100,000 tasks stored as with ten.
    failures = master.queries.failures(FAILURES_SHOWN)
    return page.render(
        "overview.html",
        nav="overview",
        usage=summary.usage(live),
        connected=len(live),
        agent_counts=summary.agent_counts(agents),
        task_counts=master.queries.task_counts(),
        failures=[task_view(master.queries, row) for row in failures],
        totals=summary.job_totals(rows),
        service_totals=summary.service_totals(services),
    )


@router.get("/ui/agents")
def agents_page(page: PageDep) -> HTMLResponse:
    """Every agent with its resources, attributes, state and last heartbeat."""
    agents = sorted(v1.list_agents(page.master), key=lambda a: (a.hostname, a.id))
    return page.render(
        "agents.html",
        nav="agents",
        agents=[(a, summary.usage([a])) for a in agents],
    )


@router.get("/ui/jobs")
def jobs_page(page: PageDep, q: str = "", state: str = "", who: str = "") -> HTMLResponse:
    """Jobs with totals: the signed-in person's own (``who=mine``, the default of those who
    may submit) or everyone's (``who=all``), filtered by name or owner (``q``) and status
    (``state``)."""
    who = page.whose(who)
    owner = page.caller.name if who == "mine" else None
    rows = [summary.job_row(j) for j in v1.page_of_jobs(page.master, owner=owner)[0]]
    state = state if state in summary.JOB_STATUSES else ""
    return page.render(
        "jobs.html",
        nav="jobs",
        rows=summary.filter_jobs(rows, q, state),
        totals=summary.job_totals(rows),
        q=q,
        state=state,
        who=who,
        statuses=summary.JOB_STATUSES,
    )


@router.get("/ui/jobs/{name}")
def job_page(
    name: str,
    page: PageDep,
    run: Annotated[int | None, Query(ge=1, le=v1.MAX_ID)] = None,
    after: pages.After = None,
) -> HTMLResponse:
    """A job: its runs with their tasks (a page of each; ``run`` and ``after``: the page of
    that run after the cursor ``after``), its dependency graph and its spec."""
    master = page.master
    try:
        job = v1.get_job(name, master)
    except HTTPException as exc:
        return page.missing(exc)
    runs = v1.list_runs(name, master)[:RUNS_SHOWN]
    tasks = {
        r.number: v1.page_of_tasks(
            master,
            job=name,
            run=r.number,
            limit=TASKS_PER_RUN,
            after=after if r.number == run else None,
        )
        for i, r in enumerate(runs)
        if i < RUNS_WITH_TASKS or r.number == run
    }

    def lookup(other: str) -> tuple[list[str], list[str]] | None:
        view = job if other == name else _found(lambda: v1.get_job(other, master))
        return None if view is None else (view.spec.parents, view.children)

    return page.render(
        "job.html",
        nav="jobs",
        row=summary.job_row(job),
        runs=runs,
        tasks=tasks,
        tasks_per_run=TASKS_PER_RUN,
        paged_run=run,
        graph=graph.layout(name, lookup),
        graph_size=(graph.NODE_W, graph.NODE_H),
        spec=job.spec.model_dump_json(indent=2, exclude_defaults=True),
    )


@router.get("/ui/services")
def services_page(page: PageDep, who: str = "") -> HTMLResponse:
    """Services with their instances running and wanted, health, deployments and what they
    wait for: the signed-in person's own (``who=mine``) or everyone's (``who=all``)."""
    who = page.whose(who)
    services = service_api.list_services(page.master)
    if who == "mine":
        services = [s for s in services if s.owner == page.caller.name]
    rows = [summary.service_row(s) for s in services]
    return page.render(
        "services.html",
        nav="services",
        rows=rows,
        totals=summary.service_totals(rows),
        who=who,
    )


@router.get("/ui/services/{service_id:path}")
def service_page(service_id: str, page: PageDep, after: pages.After = None) -> HTMLResponse:
    """A service: its live tasks with host, ports and health (a page, after the cursor
    ``after``), its deployments with their steps, its versions and its spec."""
    master = page.master
    try:
        service = service_api.get_service(service_id, master)
    except (HTTPException, NotFound) as exc:
        return page.missing(exc, nav="services")
    running = [service_api.get_deployment(d, master) for d in service.deployments]
    ended = [
        d
        for d in summary.deployments_of(service.id, service_api.list_deployments(master, all=True))
        if d.state != "RUNNING"
    ]
    tasks, next_page = service_api.page_of_service_tasks(master, service.id, TASKS_SHOWN, after)
    return page.render(
        "service.html",
        nav="services",
        row=summary.service_row(service),
        tasks=tasks,
        next_page=next_page,
        tasks_shown=TASKS_SHOWN,
        deployments=running + ended[:ENDED_DEPLOYMENTS_SHOWN],
        versions=service_api.list_versions(service.id, master)[:VERSIONS_SHOWN],
        spec=service.spec.model_dump_json(indent=2, exclude_defaults=True),
    )


@router.get("/ui/deployments")
def deployments_page(page: PageDep) -> HTMLResponse:
    """Running deployments step by step (to cancel), and the newest ended ones."""
    master = page.master
    ended = [d for d in service_api.list_deployments(master, all=True) if d.state != "RUNNING"]
    return page.render(
        "deployments.html",
        nav="deployments",
        running=service_api.list_deployments(master, all=False),
        ended=ended[:ENDED_DEPLOYMENTS_LISTED],
    )


@router.get("/ui/usage")
def usage_page(page: PageDep, window: str = "24h", by: str = "user") -> HTMLResponse:
    """Accounting: what each user (or group) used over the last hour, day, week or month."""
    window = window if window in USAGE_WINDOWS else "24h"  # the page's own links: no 422
    until = datetime.fromtimestamp(page.master.queries.now(), UTC)
    view = usage_api.get_usage(
        page.master,
        since=until - USAGE_WINDOWS[window][1],
        until=until,
        by="group" if by == "group" else "user",
    )
    return page.render(
        "usage.html",
        nav="usage",
        view=view,
        by=view.by,
        window=window,
        windows=[(key, label) for key, (label, _) in USAGE_WINDOWS.items()],
        outcomes=OUTCOMES,
    )


@router.get("/ui/share")
def share_page(page: PageDep) -> HTMLResponse:
    """Fair share: each user's weight, quotas, decayed usage, share, running and waiting work,
    next in line first."""
    report = page.master.queries.share()
    days = report.half_life / 86400
    half_life = f"{days:g} days" if days >= 1 else f"{report.half_life / 3600:g} hours"
    return page.render("share.html", nav="share", report=report, half_life=half_life)


@router.get("/ui/tasks/{task_id}")
async def task_page(task_id: str, page: PageDep) -> HTMLResponse:
    """A task: its state history, agent, exit code, sandbox files, and the tail of its stdout
    and stderr."""
    try:
        task = v1.get_task(task_id, page.master)
    except HTTPException as exc:
        return page.missing(exc)
    agent = next((a for a in v1.list_agents(page.master) if a.id == task.agent_id), None)
    try:
        listing = await page.master.list_files(task_id)
        files_error = listing.error or ""
        files = [
            {"path": f.path, "size": f.size, "modified": datetime.fromtimestamp(f.mtime, UTC)}
            for f in listing.files
        ]
    except Unavailable as exc:
        files, files_error = [], str(exc)
    # A service's task belongs under Services: its owner is a path ("/web").
    nav = "services" if task.job.startswith("/") else "jobs"
    return page.render(
        "task.html", nav=nav, task=task, agent=agent, files=files, files_error=files_error
    )


@router.get("/ui/tasks/{task_id}/files/{path:path}")
async def task_file(task_id: str, path: str, page: PageDep) -> Response:
    """The first MiB of a sandbox file, for the file links of the task page: as UTF-8 text when
    it is text, else its bytes as they are."""
    try:
        got = await page.master.read_file(task_id, path, 0, 1024 * 1024)
    except (NotFound, Unavailable) as exc:
        return PlainTextResponse(str(exc), status_code=404)
    if got.error:
        return PlainTextResponse(got.error, status_code=404)
    chunk = LogChunk.of_bytes(task_id, path, 0, got.data, got.size, got.running)
    if chunk.encoding == "base64":
        return Response(chunk.content(), media_type="application/octet-stream")
    cut = "\n[… cut at 1 MiB]\n" if chunk.next_offset < chunk.size else ""
    return PlainTextResponse(chunk.data + cut)


# --- signing in, live events, static files


def _login(request: Request, target: str, error: str = "", status: int = 200) -> HTMLResponse:
    html = TEMPLATE_ENV.get_template("login.html").render(next=target, error=error)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/ui/login", response_model=None)
def login_form(request: Request, next: str = "/") -> HTMLResponse | RedirectResponse:
    """The form that asks for a token (straight on when the cluster needs none)."""
    if not _auth_required(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login(request, _safe_next(next))


@router.post("/ui/login", response_model=None)
async def login(request: Request) -> HTMLResponse | RedirectResponse:
    """Check the token; a good one goes into the cookie the pages and their script read."""
    form = parse_qs((await request.body()).decode(errors="replace"), keep_blank_values=True)
    token = form.get("token", [""])[0].strip()
    target = _safe_next(form.get("next", ["/"])[0])
    if not token:
        return _login(request, target, "Enter an access token.", 400)
    found = settings_of(request).master.accounts.authenticate(token)
    if isinstance(found, str):
        why = (
            "That token is not valid on this cluster."
            if found == UNKNOWN_TOKEN
            else f"That token no longer works: {found}."  # expired or revoked: say which
        )
        return _login(request, target, why, 401)
    if found.role is Role.AGENT:
        return _login(request, target, "That is an agent token: it only lets agents join.", 403)
    response = RedirectResponse(target, status_code=303)
    # Readable by the pages' script (not HttpOnly), which sends it as a Bearer token to the API.
    response.set_cookie(
        COOKIE, token, samesite="lax", secure=request.url.scheme == "https", path="/"
    )
    return response


@router.post("/ui/logout")
def logout() -> RedirectResponse:
    """Forget the token."""
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/ui/events", response_class=StreamingResponse)
async def ui_events(
    request: Request,
    since: Annotated[int | None, Query(ge=0, le=v1.MAX_ID)] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=v1.MAX_ID)] = None,
) -> StreamingResponse:
    """``/api/v1/events`` for the pages' ``EventSource``, which can only send the cookie."""
    return await events.events(request, since, last_event_id)


@router.get("/ui/static/{name}")
def static(name: str) -> FileResponse:
    """The stylesheet, the script and the icon (revalidated on each load: no build step)."""
    if name not in STATIC_FILES:
        raise HTTPException(404, f"no static file {name!r}")
    path = STATIC / name
    return FileResponse(
        path, media_type=STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"}
    )
