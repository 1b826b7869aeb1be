"""``corral exec TASK -- CMD...``: run a command inside a running task (the owner's debugging)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from corral.cli.context import EXIT_FAILED, EXIT_INVALID, config_of, fail

HELP = """Run CMD [ARGS]... inside the running task TASK, as `docker exec` or `kubectl exec`: in its
sandbox, with its environment, inside its limits (its cgroup, or its container). Its stdout and
stderr come back as it writes them; with -i, stdin is passed to it. Exits with the command's
status (1 if it could not be run, with the reason).

Write `--` before CMD if it has options of its own: `corral exec sim.1.0.0 -- ls -l`.
"""


def exec_command(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="TASK", help="Task id: JOB.RUN.SLOT.ATTEMPT.")],
    command: Annotated[list[str], typer.Argument(metavar="CMD", show_default=False)],
    stdin: Annotated[
        bool, typer.Option("--stdin", "-i", help="Pass stdin to the command.")
    ] = False,
) -> None:
    """Run CMD in TASK; its help is ``HELP``."""
    from corral.client.execs import exec_task  # here: `corral exec` alone loads websockets

    if command[:1] == ["--"]:  # after TASK every word is CMD's: "--" reaches us as one
        command = command[1:]
    if not command:
        fail("give the command to run: corral exec TASK -- CMD [ARGS]...", EXIT_INVALID)
    result = exec_task(
        config_of(ctx),
        task_id,
        command,
        stdin=sys.stdin.buffer if stdin else None,
        stdout=sys.stdout.buffer,
        stderr=sys.stderr.buffer,
    )
    if result.exit_code is not None:
        raise typer.Exit(result.exit_code)
    fail(
        result.error or "the command ended without a status",
        EXIT_INVALID if result.status == 422 else EXIT_FAILED,
    )


def register(app: typer.Typer) -> None:
    """Add ``exec`` to the app."""
    app.command("exec", help=HELP, context_settings={"allow_interspersed_args": False})(
        exec_command
    )
