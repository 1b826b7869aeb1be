"""``corral tasks``, ``corral task show|kill`` and ``corral logs``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from corral.cli.context import connect
from corral.cli.output import console, print_json, print_list, say
from corral.cli.views import TASK_COLUMNS, task_fields, task_history
from corral.spec.states import TaskState

if TYPE_CHECKING:
    from corral.client.sync import Client

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TaskArgument = Annotated[
    str, typer.Argument(help="Task id: JOB.RUN.SLOT.ATTEMPT.", show_default=False)
]

FOLLOW_POLL = 0.5  # seconds between reads while following a log that has no new data
LOG_CHUNK = 65536

task_app = typer.Typer(help="Show or kill one task.", no_args_is_help=True)


def list_tasks(
    ctx: typer.Context,
    state: Annotated[TaskState | None, typer.Option(help="Only tasks in this state.")] = None,
    job: Annotated[str | None, typer.Option(help="Only tasks of this job.")] = None,
    run: Annotated[int | None, typer.Option(help="Only tasks of this run (with --job).")] = None,
    agent: Annotated[str | None, typer.Option(help="Only tasks on this agent id.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many tasks.")] = None,
    after: Annotated[
        str | None, typer.Option(help="Go on from here: the cursor a page with --limit ends with.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List tasks matching every filter given, in creation order; with --limit, a page (the
    next one: --after CURSOR, as the page says at its end)."""
    with connect(ctx) as client:
        tasks = client.tasks(state=state, job=job, run=run, agent=agent, limit=limit, after=after)
    print_list(tasks, TASK_COLUMNS, as_json, "tasks")
    if tasks.next is not None:
        typer.echo(f"more: --after {tasks.next}", err=True)


@task_app.command("show")
def show(ctx: typer.Context, task_id: TaskArgument, as_json: JsonOption = False) -> None:
    """Show a task, with its state history (times and reasons)."""
    with connect(ctx) as client:
        task = client.task(task_id)
    if as_json:
        print_json(task)
        return
    console.print(task_fields(task))
    if task.events:
        console.print()
        console.print(task_history(task))


@task_app.command("kill")
def kill(ctx: typer.Context, task_id: TaskArgument, as_json: JsonOption = False) -> None:
    """Kill one task."""
    with connect(ctx) as client:
        task = client.kill_task(task_id)
    if as_json:
        print_json(task)
    else:
        say(f"{task.id}: {task.state}")


def logs(
    ctx: typer.Context,
    task_id: TaskArgument,
    stderr: Annotated[bool, typer.Option("--stderr", help="Show stderr, not stdout.")] = False,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing until the task has ended.")
    ] = False,
) -> None:
    """Print a task's stdout (or stderr), read from its sandbox on the agent."""
    with connect(ctx) as client:
        copy_log(client, task_id, "stderr" if stderr else "stdout", follow)


def copy_log(client: Client, task_id: str, file: str, follow: bool) -> None:
    """Write the log to stdout chunk by chunk; with ``follow``, until the chunk says complete."""
    offset = 0
    while True:
        chunk = client.logs(task_id, "stderr" if file == "stderr" else "stdout", offset, LOG_CHUNK)
        if chunk.data:
            # The bytes as the task wrote them: a log need not be UTF-8.
            sys.stdout.buffer.write(chunk.content())
            sys.stdout.buffer.flush()
        offset = chunk.next_offset
        if chunk.complete:
            return
        if offset >= chunk.size:  # caught up with what the task has written so far
            if not follow:
                return
            time.sleep(FOLLOW_POLL)


def register(app: typer.Typer) -> None:
    """Add ``tasks``, ``logs`` and the ``task`` group to the app."""
    app.command("tasks")(list_tasks)
    app.command("logs")(logs)
    app.add_typer(task_app, name="task")
