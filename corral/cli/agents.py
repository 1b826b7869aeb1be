"""``corral agents``."""

from __future__ import annotations

from typing import Annotated

import typer

from corral.cli.context import connect
from corral.cli.output import print_list
from corral.cli.views import AGENT_COLUMNS


def list_agents(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the agents the master knows, with their used and total resources."""
    with connect(ctx) as client:
        agents = client.agents()
    print_list(agents, AGENT_COLUMNS, as_json, "agents")


def register(app: typer.Typer) -> None:
    """Add ``agents`` to the app."""
    app.command("agents")(list_agents)
