"""``corral jobs`` and ``corral job show|kill|rm|run``."""

from __future__ import annotations

from typing import Annotated

import typer

from corral.cli.apply import apply
from corral.cli.context import connect, connect_rows
from corral.cli.output import console, instant, print_json, print_list, say, table
from corral.cli.views import (
    JOB_COLUMNS,
    RUN_COLUMNS,
    SCHEDULED_COLUMNS,
    TASK_COLUMNS,
    job_fields,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArgument = Annotated[str, typer.Argument(help="The job's name.", show_default=False)]

job_app = typer.Typer(help="Show, kill, delete or re-run one job.", no_args_is_help=True)


def list_jobs(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option(help="Only jobs of this owner.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Only jobs whose name has this.")] = None,
    scheduled: Annotated[
        bool, typer.Option("--scheduled", help="Only scheduled jobs, with their next run.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first, with the state of their last run."""
    with connect_rows(ctx) as client:
        jobs = client.jobs(owner=owner, q=q)
    if scheduled:
        jobs = sorted(
            (j for j in jobs if j["spec"]["schedule"] is not None),
            key=lambda j: (j["next_run"] is None, instant(j["next_run"] or j["created_at"])),
        )
        print_list(jobs, SCHEDULED_COLUMNS, as_json, "scheduled jobs")
    else:
        print_list(jobs, JOB_COLUMNS, as_json, "jobs")


@job_app.command("show")
def show(
    ctx: typer.Context,
    name: NameArgument,
    limit: Annotated[
        int, typer.Option(min=1, help="Tasks (attempts) of the last run to list.")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show a job's spec, its runs with task counts, and the tasks of its last run."""
    with connect(ctx) as client:
        job = client.job(name)
        runs = client.runs(name)
        last = job.last_run
        tasks = client.tasks(job=name, run=last.number, limit=limit) if last else []
    if as_json:
        print_json({"job": job, "runs": runs, "tasks": tasks})
        return
    console.print(job_fields(job))
    if runs:
        console.print()
        console.print(table(runs, RUN_COLUMNS, title="runs"))
    if last and tasks:
        more = f" (the first {limit}; --limit shows more)" if len(tasks) == limit else ""
        console.print()
        console.print(table(tasks, TASK_COLUMNS, title=f"tasks of run {last.number}{more}"))


@job_app.command("kill")
def kill(
    ctx: typer.Context,
    name: NameArgument,
    run: Annotated[int | None, typer.Option(help="Kill only this run.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Kill every unfinished task of a job (or of one of its runs)."""
    with connect(ctx) as client:
        killed = client.kill_job(name) if run is None else client.kill_run(name, run)
    if as_json:
        print_json(killed)
    else:
        say(f"{name}: unfinished tasks {'' if run is None else f'of run {run} '}killed")


@job_app.command("rm")
def remove(ctx: typer.Context, name: NameArgument) -> None:
    """Delete a job and its history (kill it first if tasks are still running)."""
    with connect(ctx) as client:
        client.delete_job(name)
    say(f"{name}: deleted")


@job_app.command("run")
def start_run(
    ctx: typer.Context,
    name: NameArgument,
    arguments: Annotated[
        list[str] | None, typer.Argument(help="Appended to the command for this run.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a new run of a job now (exit status with --wait as for `corral run`)."""
    with connect(ctx) as client:
        run = client.start_run(name, arguments or [])
        disabled = client.job(name).spec.disabled
    if disabled and not as_json:
        say(f"{name} is disabled: this run is started by hand; its schedule still fires nothing")
    if wait:
        from corral.cli.follow import wait_and_exit

        wait_and_exit(ctx, name, run.number, as_json)
    elif as_json:
        print_json(run)
    else:
        say(f"{name}: run {run.number} started, {run.total} task{'s' * (run.total != 1)}")


@job_app.command("graph")
def graph(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print the dependency graph: each job with the jobs that run after it."""
    with connect_rows(ctx) as client:
        jobs = client.jobs()
    edges = sorted((p, j["name"]) for j in jobs for p in j["spec"]["parents"])
    if as_json:
        print_json([{"parent": p, "child": c} for p, c in edges])
        return
    children: dict[str, list[str]] = {}
    for parent, child in edges:
        children.setdefault(parent, []).append(child)
    roots = sorted({p for p, _ in edges} - {c for _, c in edges})
    lines: list[str] = []

    def walk(name: str, depth: int, seen: frozenset[str]) -> None:
        lines.append("  " * depth + ("└─ " if depth else "") + name)
        for child in children.get(name, []):
            if child not in seen:  # cycles are refused by the master; this only guards
                walk(child, depth + 1, seen | {child})

    for root in roots:
        walk(root, 0, frozenset({root}))
    say("\n".join(lines) if lines else "no dependencies")


def register(app: typer.Typer) -> None:
    """Add ``jobs`` and the ``job`` group (with ``job apply``, as ``apply``) to the app."""
    job_app.command("apply")(apply)
    app.command("jobs")(list_jobs)
    app.add_typer(job_app, name="job")
