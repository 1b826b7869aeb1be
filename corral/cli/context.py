"""What every command shares: the client it talks through, and how failures end the program.

Exit statuses: 0 success; 1 the master refused or failed (not found, conflict, unreachable), or
a waited-for run did not succeed; 2 invalid input (a bad option or spec, locally or as a 422),
like typer's own usage errors; 130 interrupted while waiting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer._click import Context as ClickContext  # typer vendors click: invoke() takes this
from typer.core import TyperGroup

from corral.client.config import ClientConfig, load_config
from corral.client.errors import ApiError, ClientError

if TYPE_CHECKING:
    from corral.client.aio import AsyncClient
    from corral.client.rows import RowClient
    from corral.client.sync import Client

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


class InvalidInput(Exception):
    """The user's input cannot make a valid request; ``str()`` says which field and why."""


@dataclass(frozen=True, slots=True)
class Overrides:
    """``--url`` / ``--token`` given before the command, stored as the click context's ``obj``."""

    url: str | None = None
    token: str | None = None


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class CorralGroup(TyperGroup):
    """The root command group: turns client errors into ``error: ...`` and an exit status.

    Catching here, around every subcommand, keeps each command free of error plumbing.
    """

    def invoke(self, ctx: ClickContext) -> Any:
        """Run the subcommand, translating ``ClientError`` and ``InvalidInput``."""
        try:
            return super().invoke(ctx)
        except InvalidInput as e:
            fail(str(e), EXIT_INVALID)
        except ApiError as e:
            fail(e.message, EXIT_INVALID if e.status == 422 else EXIT_FAILED)
        except ClientError as e:
            fail(e.message)


def config_of(ctx: typer.Context) -> ClientConfig:
    """The master to talk to: ``--url``/``--token`` if given, else ``load_config()``.

    Resolved on first use, not in the root callback, so that a broken config file does not
    stop commands that never talk to a master (``corral up``).
    """
    overrides = ctx.find_object(Overrides) or Overrides()
    if overrides.url:
        # Like CORRAL_URL: a token read from a file never goes to a URL it was not found with.
        token = overrides.token or os.environ.get("CORRAL_TOKEN") or None
        return ClientConfig(overrides.url, token)
    config = load_config()
    return ClientConfig(config.url, overrides.token or config.token)


# The clients are imported as a command connects: the typed ones load pydantic's models (and
# the async one httpx), which `corral jobs` (a RowClient) never needs, and `corral --help` needs
# no HTTP at all.


def connect(ctx: typer.Context) -> Client:
    """A blocking client for this invocation (use it in a ``with`` block)."""
    from corral.client.sync import Client

    config = config_of(ctx)
    return Client(config.url, config.token)


def connect_rows(ctx: typer.Context) -> RowClient:
    """A client of listings as rows, for commands that only print them (use it in a ``with``
    block)."""
    from corral.client.rows import RowClient

    config = config_of(ctx)
    return RowClient(config.url, config.token)


def connect_async(ctx: typer.Context) -> AsyncClient:
    """An asyncio client for this invocation (use it in an ``async with`` block)."""
    from corral.client.aio import AsyncClient

    config = config_of(ctx)
    return AsyncClient(config.url, config.token)
