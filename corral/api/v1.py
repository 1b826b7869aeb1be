"""The native API: jobs, runs, tasks, logs and agents. Routes only translate; the master acts."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import AfterValidator

from corral import __version__
from corral.api import pages
from corral.api.callers import caller_of, master_of, new_work_owner
from corral.api.render import agent_view, job_view, run_view, task_view
from corral.master.master import Master
from corral.spec import limits
from corral.spec.jobs import JobSpec
from corral.spec.protocol import MAX_READ
from corral.spec.states import TaskState
from corral.spec.views import (
    AgentView,
    ClusterInfo,
    JobView,
    LogChunk,
    RunView,
    SandboxView,
    TaskView,
)

MasterDep = Annotated[Master, Depends(master_of)]  # as the caller may read it

router = APIRouter(prefix="/api/v1")
MAX_ID = 2**62  # ids and numbers are 64-bit in the store: larger ones are refused, not crashed on
RunNumber = Annotated[int, Path(ge=1, le=MAX_ID)]
UPCOMING, MAX_UPCOMING = 5, 100  # firings listed in a job's view by default, and at most


def _job_or_404(master: Master, name: str, upcoming: int = UPCOMING) -> JobView:
    row = master.queries.job(name)
    if row is None:
        raise HTTPException(404, f"job {name!r} not found")
    return job_view(master.queries, row, detail=True, upcoming=upcoming)


@router.get("/info")
def info(request: Request) -> ClusterInfo:
    """Who and what this is, and who is asking."""
    caller = caller_of(request)
    master = master_of(request)
    groups = master.queries.accounts.user(caller.name)
    return ClusterInfo(
        version=__version__,
        leader=master.leading,
        leader_url=master.leader_url,
        user=caller.name,
        role=caller.role.value,
        groups=[] if groups is None else groups.groups,
    )


@router.post("/jobs", status_code=201)
def create_job(spec: JobSpec, master: MasterDep, request: Request) -> JobView:
    """Submit a new job; its first run starts at once."""
    master.jobs.submit(spec, *new_work_owner(request, spec.owner))
    return _job_or_404(master, spec.name)


@router.put("/jobs/{name}")
def apply_job(
    name: str, spec: JobSpec, master: MasterDep, request: Request, response: Response
) -> JobView:
    """Create or update a job: a changed spec starts a new run, an identical one nothing."""
    if spec.name != name:
        raise HTTPException(
            400, f"name in the body ({spec.name!r}) differs from the URL ({name!r})"
        )
    created, changed = master.jobs.apply(spec, *new_work_owner(request, spec.owner))
    response.status_code = 201 if created else 200
    response.headers["X-Corral-Changed"] = "true" if changed else "false"
    return _job_or_404(master, name)


@router.get("/jobs")
def list_jobs(
    master: MasterDep,
    request: Request,
    response: Response,
    owner: str | None = None,
    q: str | None = None,
    limit: pages.Limit = None,
    after: pages.After = None,
) -> list[JobView]:
    """Jobs, newest first; with ``limit``, a page (see ``corral.api.pages``)."""
    found, cursor = page_of_jobs(master, owner, q, limit, after)
    pages.link_next(request, response, cursor)
    return found


def page_of_jobs(
    master: Master,
    owner: str | None = None,
    q: str | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> tuple[list[JobView], str | None]:
    """A page of jobs, and the cursor of the next (None: the last)."""
    found = master.queries.jobs(owner, q, limit=pages.ask(limit), after=pages.read_job(after))
    rows, cursor = pages.cut(found, limit, lambda r: pages.job_cursor(r["created_at"], r["name"]))
    return [job_view(master.queries, row) for row in rows], cursor


@router.get("/jobs/{name}")
def get_job(
    name: str,
    master: MasterDep,
    upcoming: Annotated[int, Query(ge=0, le=MAX_UPCOMING)] = UPCOMING,
) -> JobView:
    """One job, with its newest skip record and its next ``upcoming`` firings."""
    return _job_or_404(master, name, upcoming)


@router.delete("/jobs/{name}", status_code=204)
def delete_job(name: str, master: MasterDep) -> Response:
    """Delete a finished job with its runs and tasks."""
    master.jobs.delete(name)
    return Response(status_code=204)


@router.post("/jobs/{name}/kill")
async def kill_job(name: str, master: MasterDep) -> JobView:
    """Kill every unfinished task of the job."""
    await master.kill_job(name)
    return _job_or_404(master, name)


@router.post("/jobs/{name}/runs", status_code=201)
def start_run(
    name: str,
    master: MasterDep,
    arguments: Annotated[
        list[Annotated[str, AfterValidator(limits.no_nul)]] | None,
        Query(description="Appended to the command for this run only."),
    ] = None,
) -> RunView:
    """Start a new run now."""
    number = master.jobs.start_run(name, arguments or [])
    return _run_or_404(master, name, number)


@router.get("/jobs/{name}/runs")
def list_runs(name: str, master: MasterDep) -> list[RunView]:
    """Runs of a job, newest first."""
    _job_or_404(master, name)
    return [run_view(master.queries, row) for row in master.queries.runs(name)]


def _run_or_404(master: Master, name: str, number: int) -> RunView:
    row = master.queries.run(name, number)
    if row is None:
        raise HTTPException(404, f"run {number} of job {name!r} not found")
    return run_view(master.queries, row)


@router.get("/jobs/{name}/runs/{number}")
def get_run(name: str, number: RunNumber, master: MasterDep) -> RunView:
    """One run."""
    return _run_or_404(master, name, number)


@router.post("/jobs/{name}/runs/{number}/kill")
async def kill_run(name: str, number: RunNumber, master: MasterDep) -> RunView:
    """Kill the unfinished tasks of one run."""
    await master.kill_job(name, number)
    return _run_or_404(master, name, number)


@router.get("/tasks")
def list_tasks(
    master: MasterDep,
    request: Request,
    response: Response,
    state: TaskState | None = None,
    job: str | None = None,
    run: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    agent: str | None = None,
    limit: pages.Limit = None,
    after: pages.After = None,
) -> list[TaskView]:
    """Tasks matching every filter, in creation order; with ``limit``, a page (see
    ``corral.api.pages``)."""
    found, cursor = page_of_tasks(master, state, job, run, agent, limit, after)
    pages.link_next(request, response, cursor)
    return found


def page_of_tasks(
    master: Master,
    state: TaskState | None = None,
    job: str | None = None,
    run: int | None = None,
    agent: str | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> tuple[list[TaskView], str | None]:
    """A page of tasks matching every filter, and the cursor of the next (None: the last)."""
    found = master.queries.task_rows(
        state=state,
        job=job,
        run=run,
        agent=agent,
        limit=pages.ask(limit),
        after=pages.read_seq(after),
    )
    rows, cursor = pages.cut(found, limit, lambda r: pages.seq_cursor(r["seq"]))
    return [task_view(master.queries, row) for row in rows], cursor


def _task_or_404(master: Master, task_id: str, with_events: bool = True) -> TaskView:
    row = master.queries.task_row(task_id)
    if row is None:
        raise HTTPException(404, f"task {task_id!r} not found")
    events = master.queries.task_events(task_id) if with_events else None
    return task_view(master.queries, row, events)


@router.get("/tasks/{task_id}")
def get_task(task_id: str, master: MasterDep) -> TaskView:
    """One task with its state history."""
    return _task_or_404(master, task_id)


@router.post("/tasks/{task_id}/kill")
async def kill_task(task_id: str, master: MasterDep) -> TaskView:
    """Kill one task."""
    await master.kill_task(task_id)
    return _task_or_404(master, task_id)


@router.get("/tasks/{task_id}/logs/{file}")
async def task_logs(
    task_id: str,
    file: Literal["stdout", "stderr"],
    master: MasterDep,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    length: Annotated[int, Query(ge=1, le=MAX_READ)] = 65536,
) -> LogChunk:
    """A piece of the task's stdout or stderr, read from its agent."""
    return await _chunk(master, task_id, file, offset, length)


async def _chunk(master: Master, task_id: str, file: str, offset: int, length: int) -> LogChunk:
    got = await master.read_file(task_id, file, offset, length)
    if got.error:
        raise HTTPException(404, got.error)
    return LogChunk.of_bytes(task_id, file, offset, got.data, got.size, got.running)


@router.get("/tasks/{task_id}/files")
async def task_files(task_id: str, master: MasterDep) -> SandboxView:
    """The files of a task's sandbox: what it wrote besides stdout and stderr."""
    got = await master.list_files(task_id)
    if got.error:
        raise HTTPException(404, got.error)
    return SandboxView(task_id=task_id, files=got.files, truncated=got.truncated)


@router.get("/tasks/{task_id}/files/{path:path}")
async def task_file(
    task_id: str,
    path: str,
    master: MasterDep,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    length: Annotated[int, Query(ge=1, le=MAX_READ)] = 65536,
) -> LogChunk:
    """A piece of any file of the task's sandbox (a path relative to it)."""
    return await _chunk(master, task_id, path, offset, length)


@router.get("/agents")
def list_agents(master: MasterDep) -> list[AgentView]:
    """Every agent the master knows."""
    return [agent_view(a, master.queries.gpu_holders(a.id)) for a in master.queries.agents()]


def _drain(master: Master, agent_id: str, draining: bool) -> AgentView:
    try:
        agent = master.agents.drain(agent_id, draining)
    except KeyError:
        raise HTTPException(404, f"agent {agent_id!r} not found") from None
    return agent_view(agent, master.queries.gpu_holders(agent.id))


@router.post("/agents/{agent_id}/drain")
def drain_agent(agent_id: str, master: MasterDep) -> AgentView:
    """Stop placing work on an agent; what it runs goes on."""
    return _drain(master, agent_id, True)


@router.post("/agents/{agent_id}/undrain")
def undrain_agent(agent_id: str, master: MasterDep) -> AgentView:
    """Place work on a drained agent again."""
    return _drain(master, agent_id, False)
