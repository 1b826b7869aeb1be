"""The ``corral`` app: client commands from this package, server commands from ``server``."""

from __future__ import annotations

from typing import Annotated

import typer

from corral.cli import (
    accounts,
    agents,
    apply,
    execs,
    jobs,
    run,
    server,
    services,
    tasks,
    usage,
)
from corral.cli.context import CorralGroup, Overrides

app = typer.Typer(
    name="corral",
    cls=CorralGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    help="Corral: one scheduler for a science cluster.\n\n"
    "Client commands find the master through --url/--token, CORRAL_URL/CORRAL_TOKEN, "
    "./.corral/client.json or ~/.config/corral/config.json (written by `corral up`). "
    "Exit status: 1 on an error from the master (or a failed run with --wait), "
    "2 on invalid input.",
)


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="The master's URL.", show_default=False)] = None,
    token: Annotated[
        str | None, typer.Option(help="API token (prefer CORRAL_TOKEN: argv is public).")
    ] = None,
) -> None:
    """Store the connection overrides for the subcommands."""
    ctx.obj = Overrides(url=url, token=token)


for module in (run, jobs, apply, services, tasks, execs, agents, accounts, usage):
    module.register(app)
server.register(app)
