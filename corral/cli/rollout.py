"""Waiting for deployments to end (``--wait`` of the service commands).

As for runs (``follow.py``), events only wake the waiter: each burst of events about the
deployments, or about tasks of their services, triggers one fetch of the deployments, which are
the truth. A slow poll runs anyway in case an event was missed, a fast one without a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn

import typer
from rich.status import Status

from corral.cli.context import EXIT_FAILED, EXIT_INTERRUPTED, connect_async
from corral.cli.follow import POLL, SAFETY_POLL, nap
from corral.cli.output import duration, err_console, print_json, say
from corral.cli.service_views import step_text
from corral.client import AsyncClient, ClientError
from corral.spec.views import DeploymentView

RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"


async def follow_deployments(
    client: AsyncClient,
    ids: Sequence[str],
    on_update: Callable[[list[DeploymentView]], None],
) -> list[DeploymentView]:
    """Call ``on_update`` with fresh views of the deployments until none is RUNNING; return
    the last views."""
    wake = asyncio.Event()
    views = [await client.deployment(i) for i in ids]
    services = {s for v in views for s in v.services}
    listener = asyncio.create_task(_listen(client, set(ids), services, wake))
    try:
        while True:
            on_update(views)
            if all(v.state != RUNNING for v in views):
                return views
            await nap(wake, POLL if listener.done() else SAFETY_POLL)
            views = [await client.deployment(i) for i in ids]
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def _listen(
    client: AsyncClient, ids: set[str], services: set[str], wake: asyncio.Event
) -> None:
    """Set ``wake`` on events of the deployments or of their services' tasks."""
    try:
        async with contextlib.aclosing(client.events()) as events:
            async for event in events:
                if event.data.get("id") in ids or event.job in services:
                    wake.set()
    except ClientError:
        return  # no stream (or it broke): follow_deployments polls faster once this is done


def _describe(views: list[DeploymentView]) -> str:
    return "; ".join(f"deployment {v.id[:8]} {v.state} step {step_text(v)}" for v in views)


def await_deployments(
    ctx: typer.Context, ids: Sequence[str], progress: bool
) -> list[DeploymentView]:
    """Follow deployments to their end (a spinner on stderr with ``progress``); the final
    views. Ctrl-C stops waiting, not the deployments, and exits 130."""

    async def main() -> list[DeploymentView]:
        async with connect_async(ctx) as client:
            if not progress:
                return await follow_deployments(client, ids, lambda _: None)
            with Status("waiting for the deployment", console=err_console) as status:
                return await follow_deployments(
                    client, ids, lambda views: status.update(_describe(views))
                )

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        typer.echo(
            "stopped waiting; the deployment goes on (`corral deployments` lists it)", err=True
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


def say_outcomes(views: Iterable[DeploymentView]) -> None:
    """One line per ended deployment: its services, how it ended and how long it took."""
    for v in views:
        reason = f": {v.reason}" if v.reason else ""
        took = duration(v.created_at, v.finished_at)
        say(f"deployment {v.id} of {', '.join(v.services)} {v.state} in {took}{reason}")


def exit_for(views: Iterable[DeploymentView]) -> NoReturn:
    """Exit 0 if every deployment SUCCEEDED, else 1 (one was cancelled or rolled back)."""
    raise typer.Exit(0 if all(v.state == SUCCEEDED for v in views) else EXIT_FAILED)


def report(
    ctx: typer.Context, deployment: DeploymentView, message: str, wait: bool, as_json: bool
) -> None:
    """End a command that started ``deployment``: print ``message`` (or the view as JSON);
    with ``wait``, follow it to its end first and exit by how it ended."""
    if not wait:
        if as_json:
            print_json(deployment)
        else:
            say(message)
        return
    if not as_json:
        say(message)
    [final] = await_deployments(ctx, [deployment.id], progress=not as_json)
    if as_json:
        print_json(final)
    else:
        say_outcomes([final])
    exit_for([final])
