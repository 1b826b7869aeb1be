"""The Chronos REST API (``/scheduler/...`` and ``/v1/scheduler/...``) for existing Chronos
clients and curl scripts. Routes only translate Chronos JSON to native jobs and back; the
master acts. Answers use Chronos' status codes: 204 with an empty body on success where Chronos
gives it, 400 with ``{"message": ..., "status": ...}`` naming the field for bad input.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute

from corral.api.callers import master_of, new_work_owner
from corral.api.render import Row, job_view
from corral.master.admission import Refused
from corral.master.master import Conflict, Master, NotFound, Unavailable
from corral.spec import limits
from corral.spec.chronos import Invalid, Kind, chronos_field, chronos_job, parse_job, to_spec
from corral.spec.states import RunState, TaskState
from corral.spec.views import JobView

PREFIXES = ("/scheduler", "/v1/scheduler")
# Chronos' search answers 10 jobs unless asked for more, and its stat lists the 5 newest tasks
# (--cassandra_job_history_limit); Corral keeps those defaults.
SEARCH_LIMIT = 10
HISTORY_LIMIT = 5
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def is_chronos_path(path: str) -> bool:
    """Whether a request path belongs to the Chronos API."""
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


def chronos_error(status: int, message: str) -> JSONResponse:
    """An error as Chronos answers it (its ``ApiResult``): chronos-python shows ``message``."""
    return JSONResponse({"message": message, "status": HTTPStatus(status).phrase}, status)


def _invalid_request(exc: RequestValidationError) -> str:
    # Drop FastAPI's "query"/"path"/"body" so the message names the parameter, as for a job.
    parts = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if p not in ("query", "path", "body")]
        parts.append(f"{chronos_field(loc)}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


class ChronosRoute(APIRoute):
    """A route answering domain errors the Chronos way, whatever the app does elsewhere."""

    def get_route_handler(self) -> Handler:
        """The route's handler, wrapped to translate errors into Chronos answers."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Invalid as e:
                return chronos_error(400, str(e))
            except Refused as e:
                # The cluster cannot run it (volumes no agent allows, unknown parents, cycles).
                return chronos_error(
                    400, "; ".join(f"{chronos_field(r.loc)}: {r.msg}" for r in e.refusals)
                )
            except Conflict as e:
                # Chronos refuses every request that contradicts the state with a 400.
                return chronos_error(400, str(e))
            except NotFound as e:
                return chronos_error(404, str(e.args[0]) if e.args else "not found")
            except Unavailable as e:
                return chronos_error(503, str(e))
            except RequestValidationError as e:
                return chronos_error(400, _invalid_request(e))
            except HTTPException as e:
                return chronos_error(e.status_code, str(e.detail))

        return answer


MasterDep = Annotated[Master, Depends(master_of)]  # as the caller may read it

# Chronos' routes are left out of the native OpenAPI document: Chronos documents them.
router = APIRouter(route_class=ChronosRoute, include_in_schema=False)


def _views(master: Master) -> list[JobView]:
    return [job_view(master.queries, row) for row in master.queries.jobs()]


@router.get("/jobs")
def list_jobs(master: MasterDep) -> list[dict[str, Any]]:
    """Every job, as Chronos lists it."""
    return [chronos_job(v) for v in _views(master)]


async def _apply(request: Request, master: Master, kind: Kind) -> Response:
    """Create or replace a job from the Chronos JSON in the body."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Invalid([("", f"the body is not JSON: {e}")]) from None
    except RecursionError:
        raise Invalid([("", "the body is nested too deeply")]) from None
    spec = to_spec(parse_job(body), kind)
    # Chronos re-reads the schedule on every POST: posting the same R1 job again runs it again.
    master.jobs.apply(spec, *new_work_owner(request, spec.owner), rearm=True)
    return Response(status_code=204)


@router.api_route("/iso8601", methods=["POST", "PUT"], status_code=204)
async def put_scheduled(request: Request, master: MasterDep) -> Response:
    """Create or replace a job that runs on an ISO 8601 schedule."""
    return await _apply(request, master, "iso8601")


@router.api_route("/dependency", methods=["POST", "PUT"], status_code=204)
async def put_dependent(request: Request, master: MasterDep) -> Response:
    """Create or replace a job that runs after its parents."""
    return await _apply(request, master, "dependency")


def _split_arguments(values: Sequence[str]) -> list[str]:
    # Chronos appends the string to the command line, so its words are split as a shell would.
    words: list[str] = []
    for value in values:
        try:
            words += shlex.split(value)
        except ValueError as e:
            raise Invalid([("arguments", f"{value!r}: {e}")]) from None
    try:
        return list(limits.argv(words))  # they reach the task's argv
    except ValueError as e:
        raise Invalid([("arguments", str(e))]) from None


@router.put("/job/{name}", status_code=204)
def run_now(
    name: str, master: MasterDep, arguments: Annotated[list[str] | None, Query()] = None
) -> Response:
    """Start a run now; ``arguments`` are appended to the job's command for this run."""
    words = _split_arguments(arguments or [])
    master.jobs.start_run(name, words)
    return Response(status_code=204)


@router.delete("/job/{name}", status_code=204)
def delete_job(name: str, master: MasterDep) -> Response:
    """Delete a job; refused while other jobs depend on it or its tasks still run."""
    master.jobs.delete(name)
    return Response(status_code=204)


@router.delete("/task/kill/{name}", status_code=204)
async def kill_tasks(name: str, master: MasterDep) -> Response:
    """Kill every unfinished task of the job."""
    await master.kill_job(name)
    return Response(status_code=204)


def _contains(text: str, term: str | None) -> bool:
    return term is not None and term.lower() in text.lower()


def matches(
    job: Mapping[str, Any], name: str | None, command: str | None, any_: str | None
) -> bool:
    """Chronos' search: every given ``name``/``command`` term is contained (case-insensitive),
    or ``any`` is contained in the name or the command."""
    named = [
        _contains(job[field], term)
        for field, term in (("name", name), ("command", command))
        if term
    ]
    hit = bool(named) and all(named)
    if any_:
        hit = hit or _contains(job["name"], any_) or _contains(job["command"], any_)
    return hit or (not named and not any_)


@router.get("/jobs/search")
def search_jobs(
    master: MasterDep,
    name: str | None = None,
    command: str | None = None,
    any_: Annotated[str | None, Query(alias="any")] = None,
    limit: Annotated[int, Query(ge=0)] = SEARCH_LIMIT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Jobs whose name or command contain the terms, by name, ``offset`` and ``limit`` applied."""
    jobs = sorted((chronos_job(v) for v in _views(master)), key=lambda j: str(j["name"]))
    found = [j for j in jobs if matches(j, name, command, any_)]
    return found[offset : offset + limit]


def _last_state(view: JobView) -> str:
    """Chronos' lastState: how the newest outcome went (fresh: none yet)."""
    if view.last_success is None and view.last_error is None:
        return "fresh"
    if view.last_error is None:
        return "success"
    if view.last_success is None:
        return "failure"
    return "success" if view.last_success > view.last_error else "failure"


def _state(view: JobView) -> str:
    """Chronos' state: idle, queued, or "N running"."""
    run = view.last_run
    if run is None or run.state.terminal:
        return "idle"
    running = run.counts.get(TaskState.RUNNING, 0)
    return f"{running} running" if running else "queued"


def graph_csv(views: Sequence[JobView]) -> str:
    """Chronos' dependency graph: a ``node,name,lastState,state`` line per job and a
    ``link,parent,child`` line per edge."""
    lines = [f"node,{v.name},{_last_state(v)},{_state(v)}" for v in views]
    lines += [f"link,{parent},{v.name}" for v in views for parent in v.spec.parents]
    return "".join(line + "\n" for line in lines)


@router.get("/graph/csv", response_class=PlainTextResponse)
def graph(master: MasterDep) -> PlainTextResponse:
    """The dependency graph as CSV."""
    return PlainTextResponse(graph_csv(_views(master)))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated as Chronos' metrics library does."""
    if not values:
        return 0.0
    pos = q * (len(values) + 1)
    index = int(pos)
    if index < 1:
        return values[0]
    if index >= len(values):
        return values[-1]
    lower, upper = values[index - 1], values[index]
    return lower + (pos - math.floor(pos)) * (upper - lower)


def histogram(durations_ms: Sequence[float]) -> dict[str, float]:
    """Chronos' histogram of run times, in milliseconds."""
    values = sorted(durations_ms)
    return {
        "75thPercentile": percentile(values, 0.75),
        "95thPercentile": percentile(values, 0.95),
        "98thPercentile": percentile(values, 0.98),
        "99thPercentile": percentile(values, 0.99),
        "median": percentile(values, 0.5),
        "mean": sum(values) / len(values) if values else 0.0,
        "count": len(values),
    }


def run_durations(runs: Sequence[Row], tasks: Sequence[Row]) -> list[float]:
    """Milliseconds from the first task start to the outcome, for each run that succeeded or
    failed (a run that never started counts from its firing)."""
    started: dict[int, float] = {}
    for t in tasks:
        if t["started_at"] is not None:
            started[t["run"]] = min(started.get(t["run"], math.inf), t["started_at"])
    done = (RunState.SUCCEEDED.value, RunState.FAILED.value)
    return [
        (r["finished_at"] - started.get(r["number"], r["created_at"])) * 1000
        for r in runs
        if r["finished_at"] is not None and r["state"] in done
    ]


def _stamp(value: float | None) -> str:
    # Chronos writes task times as MM/dd/yy HH:mm:ss, and N/A for none yet.
    return (
        "N/A" if value is None else datetime.fromtimestamp(value, UTC).strftime("%m/%d/%y %H:%M:%S")
    )


def _span(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    return f"{text}{secs}s"


def task_stat(t: Row) -> dict[str, str]:
    """One entry of Chronos' taskStatHistory."""
    status = {"FINISHED": "Success", "RUNNING": "Running"}.get(t["state"], "Fail")
    stat = {
        "taskId": t["id"],
        "jobName": t["job"],
        "slaveId": t["agent_id"] or "",
        "startTime": _stamp(t["started_at"]),
        "endTime": _stamp(t["finished_at"]),
        "status": status,
    }
    if t["started_at"] is not None and t["finished_at"] is not None:
        stat["duration"] = _span(t["finished_at"] - t["started_at"])
    return stat


@router.get("/job/stat/{name}")
def job_stat(name: str, master: MasterDep) -> dict[str, Any]:
    """Run-time percentiles of the job's finished runs and its newest tasks."""
    if master.queries.job(name) is None:
        raise NotFound(f"job {name!r} not found")
    tasks = master.queries.task_rows(job=name)
    started = sorted(
        (t for t in tasks if t["started_at"] is not None), key=lambda t: -t["started_at"]
    )
    return {
        "histogram": histogram(run_durations(master.queries.runs(name), tasks)),
        "taskStatHistory": [task_stat(t) for t in started[:HISTORY_LIMIT]],
    }
