"""``corral agents``, ``corral drain`` and ``corral undrain``."""

from __future__ import annotations

from typing import Annotated

import typer

from corral.cli.context import InvalidInput, connect
from corral.cli.output import print_list, say
from corral.cli.views import AGENT_COLUMNS


def list_agents(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the agents the master knows, with their used and total resources."""
    with connect(ctx) as client:
        agents = client.agents()
    print_list(agents, AGENT_COLUMNS, as_json, "agents")


AgentArgument = Annotated[
    str, typer.Argument(help="The agent's id or hostname.", show_default=False)
]


def _set_draining(ctx: typer.Context, agent: str, draining: bool) -> None:
    with connect(ctx) as client:
        known = client.agents()
        ids = [a.id for a in known if agent in (a.id, a.hostname)]
        if len(ids) != 1:
            what = "no agent" if not ids else f"{len(ids)} agents"
            raise InvalidInput(f"{what} with id or hostname {agent!r}")
        view = client.drain_agent(ids[0], draining)
    say(f"{view.hostname} ({view.id}): {view.state.value}")


def drain(ctx: typer.Context, agent: AgentArgument) -> None:
    """Place no new work on an agent; what it runs goes on."""
    _set_draining(ctx, agent, True)


def undrain(ctx: typer.Context, agent: AgentArgument) -> None:
    """Place work on a drained agent again."""
    _set_draining(ctx, agent, False)


def register(app: typer.Typer) -> None:
    """Add ``agents``, ``drain`` and ``undrain`` to the app."""
    app.command("agents")(list_agents)
    app.command("drain")(drain)
    app.command("undrain")(undrain)
