"""``corral apply -f FILE``: create or update jobs from JSON or YAML specs, by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import typer

from corral.cli.context import connect
from corral.cli.output import print_json, say
from corral.cli.specs import load_specs
from corral.client import ApiError, Client
from corral.spec.jobs import JobSpec
from corral.spec.views import JobView

Action = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one spec did, and the run it started (if any)."""

    action: Action
    job: JobView
    started_run: int | None


def apply_one(client: Client, spec: JobSpec) -> Applied:
    """PUT one spec and say what it did.

    The answer only tells created (201) from existing (200); an existing job is "unchanged"
    when the apply neither touched it (``updated_at``) nor started a run, per the API contract
    that an identical spec changes nothing.
    """
    try:
        before: JobView | None = client.job(spec.name)
    except ApiError as e:
        if e.status != 404:
            raise
        before = None
    after, created = client.apply_job(spec)
    last = after.last_run.number if after.last_run else None
    if created or before is None:
        return Applied("created", after, last)
    started = last if after.runs > before.runs else None
    if started is None and after.updated_at == before.updated_at:
        return Applied("unchanged", after, None)
    return Applied("updated", after, started)


def apply(
    ctx: typer.Context,
    files: Annotated[
        list[str],
        typer.Option("-f", "--file", help="JSON or YAML file with a spec or a list; '-': stdin."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Create or update jobs from spec files; each is created, updated or unchanged.

    Every spec of every file is validated before the first is sent.
    """
    specs = [spec for path in files for spec in load_specs(path)]
    results = []
    with connect(ctx) as client:
        for spec in specs:
            done = apply_one(client, spec)
            results.append({"name": spec.name, "action": done.action, "job": done.job})
            if not as_json:
                started = f" (run {done.started_run} started)" if done.started_run else ""
                say(f"{spec.name}: {done.action}{started}")
    if as_json:
        print_json(results)


def register(app: typer.Typer) -> None:
    """Add ``apply`` to the app."""
    app.command("apply")(apply)
