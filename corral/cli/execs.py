"""``corral exec TASK -- CMD...``: run a command inside a running task (the owner's debugging)."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from corral.cli.context import EXIT_FAILED, EXIT_INVALID, config_of, fail

HELP = """Run CMD [ARGS]... inside the running task TASK, as `docker exec` or `kubectl exec`: in its
sandbox, with its environment, inside its limits (its cgroup, or its container). Its stdout and
stderr come back as it writes them; with -i, stdin is passed to it. Exits with the command's
status (1 if it could not be run, with the reason).

With -t the command runs on a terminal of its own (a shell's prompt, job control, editors):
`corral exec -it TASK -- sh`. Its window follows yours, and with -i your terminal is in raw
mode while it runs (^C and ^D go to the command). Its output, stderr included, comes on stdout.

Write `--` before CMD if it has options of its own: `corral exec sim.1.0.0 -- ls -l`.
"""


def exec_command(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(metavar="TASK", help="Task id: JOB.RUN.SLOT.ATTEMPT.")],
    command: Annotated[list[str], typer.Argument(metavar="CMD", show_default=False)],
    stdin: Annotated[
        bool, typer.Option("--stdin", "-i", help="Pass stdin to the command.")
    ] = False,
    tty: Annotated[
        bool, typer.Option("--tty", "-t", help="Run the command on a terminal of its own.")
    ] = False,
) -> None:
    """Run CMD in TASK; its help is ``HELP``."""
    from corral.cli import terminal
    from corral.client.execs import exec_task  # here: `corral exec` alone loads websockets

    if command[:1] == ["--"]:  # after TASK every word is CMD's: "--" reaches us as one
        command = command[1:]
    if not command:
        fail("give the command to run: corral exec TASK -- CMD [ARGS]...", EXIT_INVALID)
    size = terminal.size_of(sys.stdout, sys.stdin) if tty else None
    raw = tty and stdin and sys.stdin.isatty()
    follow = None  # the window follows the caller's terminal, when it has one
    if size is not None:
        follow = terminal.follow_resizes(lambda: terminal.size_of(sys.stdout, sys.stdin))
    with terminal.raw(sys.stdin) if raw else contextlib.nullcontext():
        result = exec_task(
            config_of(ctx),
            task_id,
            command,
            # Unbuffered: a buffer's lock, held by the thread waiting on a terminal, would
            # abort the interpreter's exit.
            stdin=open(sys.stdin.fileno(), "rb", buffering=0, closefd=False) if stdin else None,
            stdout=sys.stdout.buffer,
            stderr=sys.stderr.buffer,
            tty=tty,
            size=size,
            on_open=follow,
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
