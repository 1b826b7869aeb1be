"""``corral apply -f FILE``: create or update jobs (by name) and services (by id) from JSON or
YAML specs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from corral.cli.context import connect
from corral.cli.output import print_json, say
from corral.cli.service_views import SCALE_ACTION
from corral.client.errors import ApiError

if TYPE_CHECKING:
    from corral.cli.specs import Kind, Spec
    from corral.client.sync import Client
    from corral.spec.jobs import JobSpec
    from corral.spec.services import ServiceSpec
    from corral.spec.views import DeploymentView, JobView, ServiceView

Action = Literal["created", "updated", "unchanged"]
ServiceAction = Literal["created", "updated", "scaled", "unchanged"]

FilesOption = Annotated[
    list[str],
    typer.Option("-f", "--file", help="JSON or YAML file with a spec or a list; '-': stdin."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the results as JSON.")]
ForceOption = Annotated[
    bool,
    typer.Option("--force", help="Cancel deployments that hold a service instead of failing."),
]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", help="Wait until the services' deployments end (exit 1 unless all succeed)."
    ),
]


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one spec did, and the run it started (if any)."""

    action: Action
    job: JobView
    started_run: int | None


@dataclass(frozen=True, slots=True)
class AppliedService:
    """What applying one service spec did, and the deployment doing it (None if unchanged)."""

    action: ServiceAction
    deployment: DeploymentView | None


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


def apply_service(client: Client, spec: ServiceSpec, force: bool = False) -> AppliedService:
    """PUT one service spec and say what it did.

    Unlike a job's, every PUT of a service is a deployment and a new version, so a spec equal
    to the service's current one is not sent at all: it is "unchanged". A changed spec that
    only differs in ``instances`` is "scaled" (nothing restarts).
    """
    try:
        before: ServiceView | None = client.service(spec.id)
    except ApiError as e:
        if e.status != 404:
            raise
        before = None
    if before is not None and before.spec == spec:
        return AppliedService("unchanged", None)
    deployment, created = client.apply_service(spec, force)
    if created or before is None:
        return AppliedService("created", deployment)
    actions = {a.action for step in deployment.steps for a in step if a.service == spec.id}
    return AppliedService("scaled" if actions == {SCALE_ACTION} else "updated", deployment)


def service_message(spec: ServiceSpec, done: AppliedService) -> str:
    """``/web: scaled to 3 (deployment ID)``."""
    what = f"scaled to {spec.instances}" if done.action == "scaled" else done.action
    return f"{spec.id}: {what}" + (f" (deployment {done.deployment.id})" if done.deployment else "")


def apply_specs(
    ctx: typer.Context, specs: list[Spec], force: bool, as_json: bool, wait: bool
) -> None:
    """Apply validated specs in order, printing what each did; with ``wait``, then follow the
    deployments started to their end and exit by how they ended."""
    results: list[dict[str, Any]] = []
    with connect(ctx) as client:
        for spec in specs:
            if spec.kind == "service":
                applied = apply_service(client, spec, force)
                results.append(
                    {"kind": "service", "id": spec.id, "action": applied.action}
                    | {"deployment": applied.deployment}
                )
                if not as_json:
                    say(service_message(spec, applied))
                continue
            done = apply_one(client, spec)
            results.append(
                {"kind": "job", "name": spec.name, "action": done.action, "job": done.job}
            )
            if not as_json:
                started = f" (run {done.started_run} started)" if done.started_run else ""
                say(f"{spec.name}: {done.action}{started}")
    deploying = [r["deployment"].id for r in results if r.get("deployment") is not None]
    if not (wait and deploying):
        if as_json:
            print_json(results)
        return
    from corral.cli.rollout import await_deployments, exit_for, say_outcomes

    final = {v.id: v for v in await_deployments(ctx, deploying, progress=not as_json)}
    if as_json:
        for r in results:
            if r.get("deployment") is not None:
                r["deployment"] = final.get(r["deployment"].id, r["deployment"])
        print_json(results)
    else:
        say_outcomes(final.values())
    exit_for(final.values())


def load_all(files: list[str], default: Kind) -> list[Spec]:
    """Every spec of every file, all validated before anything is sent."""
    from corral.cli.specs import load_specs  # YAML and the spec models: only when applying

    return [spec for path in files for spec in load_specs(path, default)]


def apply(
    ctx: typer.Context,
    files: FilesOption,
    force: ForceOption = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create or update jobs and services from spec files; each is created, updated or unchanged.

    A document is a job unless its `kind` is `service` (a Marathon app is a service too).
    Every spec of every file is validated before the first is sent.
    """
    apply_specs(ctx, load_all(files, "job"), force, as_json, wait)


def register(app: typer.Typer) -> None:
    """Add ``apply`` to the app."""
    app.command("apply")(apply)
