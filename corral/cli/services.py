"""``corral services``, ``corral service show|apply|scale|restart|rm|kill|versions``,
``corral deployments`` and ``corral deployment show|cancel``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from corral.cli.apply import FilesOption, ForceOption, apply_specs, load_all
from corral.cli.context import InvalidInput, connect
from corral.cli.output import Column, console, print_json, print_list, say, table, when
from corral.cli.service_views import (
    DEPLOYMENT_COLUMNS,
    SERVICE_COLUMNS,
    service_fields,
    service_task_columns,
)
from corral.client.errors import ApiError
from corral.spec.limits import MAX_INSTANCES

if TYPE_CHECKING:
    from corral.spec.views import DeploymentView, ServiceVersionView

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ServiceArgument = Annotated[
    str,
    typer.Argument(help="The service's id: /web, /lab/db (web means /web).", show_default=False),
]
DeploymentArgument = Annotated[str, typer.Argument(help="The deployment's id.", show_default=False)]
WaitOption = Annotated[
    bool,
    typer.Option("--wait", help="Wait until the deployment ends (exit 1 unless it succeeds)."),
]

service_app = typer.Typer(
    help="Show, create or change, scale, restart or delete one service.", no_args_is_help=True
)
deployment_app = typer.Typer(help="Show or cancel one deployment.", no_args_is_help=True)

VERSION_COLUMNS: list[Column[ServiceVersionView]] = [
    Column("VERSION", lambda v: v.version),
    Column("CONFIG", lambda v: str(v.config), "right"),
    Column("INSTANCES", lambda v: str(v.spec.instances), "right"),
    Column("CREATED", lambda v: when(v.created_at)),
]


def report(
    ctx: typer.Context, deployment: DeploymentView, message: str, wait: bool, as_json: bool
) -> None:
    """``rollout.report``, imported only by the commands that start a deployment: following
    one loads asyncio and the event stream."""
    from corral.cli import rollout

    rollout.report(ctx, deployment, message, wait, as_json)


@contextmanager
def forceable() -> Iterator[None]:
    """Name the CLI's option in the master's answer to a change of a service that a running
    deployment holds (it names the API's ``?force=true``)."""
    try:
        yield
    except ApiError as e:
        if e.status == 409 and "force" in e.message:
            raise ApiError(409, f"{e.message} From the CLI: --force.") from None
        raise


def list_services(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List services with their instances wanted and running, health, deployments and
    why any wait."""
    with connect(ctx) as client:
        services = client.services()
    print_list(services, SERVICE_COLUMNS, as_json, "services")


@service_app.command("show")
def show(ctx: typer.Context, service_id: ServiceArgument, as_json: JsonOption = False) -> None:
    """Show a service's spec, its live tasks (host, ports, health) and its deployments."""
    with connect(ctx) as client:
        service = client.service(service_id)
        tasks = client.service_tasks(service.id)
        deployments = [client.deployment(d) for d in service.deployments]
    if as_json:
        print_json({"service": service, "tasks": tasks, "deployments": deployments})
        return
    console.print(service_fields(service))
    if tasks:
        console.print()
        columns = service_task_columns(checked=bool(service.spec.health_checks))
        console.print(table(tasks, columns, title="tasks"))
    if deployments:
        console.print()
        console.print(table(deployments, DEPLOYMENT_COLUMNS, title="deployments"))


@service_app.command("apply")
def apply(
    ctx: typer.Context,
    files: FilesOption,
    force: ForceOption = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create or change services from spec files (a document without `kind` is a service).

    Each is created, updated (a rolling restart), scaled or unchanged; every spec of every
    file is validated before the first is sent.
    """
    specs = load_all(files, "service")
    jobs = [s.name for s in specs if s.kind == "job"]
    if jobs:
        raise InvalidInput(
            f"{', '.join(jobs)}: a job, not a service; `corral apply -f` takes jobs and services"
        )
    with forceable():
        apply_specs(ctx, specs, force, as_json, wait)


@service_app.command("scale")
def scale(
    ctx: typer.Context,
    service_id: ServiceArgument,
    instances: Annotated[
        int,
        typer.Argument(min=0, max=MAX_INSTANCES, help="How many tasks to run.", show_default=False),
    ],
    force: ForceOption = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Change how many tasks of a service run; nothing restarts."""
    with connect(ctx) as client, forceable():
        dep = client.scale_service(service_id, instances, force)
    report(
        ctx, dep, f"{dep.services[0]}: scaling to {instances} (deployment {dep.id})", wait, as_json
    )


@service_app.command("restart")
def restart(
    ctx: typer.Context,
    service_id: ServiceArgument,
    force: ForceOption = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Replace every task of a service, rolling, by its upgrade strategy."""
    with connect(ctx) as client, forceable():
        dep = client.restart_service(service_id, force)
    report(ctx, dep, f"{dep.services[0]}: restarting (deployment {dep.id})", wait, as_json)


@service_app.command("rm")
def remove(
    ctx: typer.Context,
    service_id: ServiceArgument,
    force: ForceOption = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a service; its tasks are stopped."""
    with connect(ctx) as client, forceable():
        dep = client.delete_service(service_id, force)
    report(ctx, dep, f"{dep.services[0]}: deleting (deployment {dep.id})", wait, as_json)


@service_app.command("kill")
def kill(
    ctx: typer.Context,
    service_id: ServiceArgument,
    task_id: Annotated[str, typer.Argument(help="The task's id.", show_default=False)],
    scale_down: Annotated[
        bool, typer.Option("--scale", help="Lower the instances instead of replacing it.")
    ] = False,
    force: ForceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Kill one task of a service: a new one replaces it, unless --scale."""
    with connect(ctx) as client, forceable():
        task = client.kill_service_task(service_id, task_id, scale=scale_down, force=force)
    if as_json:
        print_json(task)
    elif scale_down:
        say(f"{task.id}: killed; {task.job} runs one instance fewer")
    else:
        say(f"{task.id}: killed; a new task of {task.job} replaces it")


@service_app.command("versions")
def versions(ctx: typer.Context, service_id: ServiceArgument, as_json: JsonOption = False) -> None:
    """List the versions of a service's spec, newest first."""
    with connect(ctx) as client:
        found = client.service_versions(service_id)
    print_list(found, VERSION_COLUMNS, as_json, "versions")


def list_deployments(
    ctx: typer.Context,
    include_ended: Annotated[
        bool, typer.Option("--all", help="Ended ones too (the newest 100).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List running deployments: their services and the step being carried out."""
    with connect(ctx) as client:
        found = client.deployments(include_ended)
    print_list(
        found,
        DEPLOYMENT_COLUMNS,
        as_json,
        "deployments" if include_ended else "running deployments",
    )


@deployment_app.command("show")
def show_deployment(
    ctx: typer.Context, deployment_id: DeploymentArgument, as_json: JsonOption = False
) -> None:
    """Show a deployment with every step."""
    with connect(ctx) as client:
        dep = client.deployment(deployment_id)
    if as_json:
        print_json(dep)
        return
    console.print(table([dep], DEPLOYMENT_COLUMNS))
    for i, step in enumerate(dep.steps, 1):
        mark = "→" if i == dep.current_step and dep.state == "RUNNING" else " "
        say(f"{mark} step {i}: " + ", ".join(f"{a.action} {a.service}" for a in step))


@deployment_app.command("cancel")
def cancel(
    ctx: typer.Context,
    deployment_id: DeploymentArgument,
    force: Annotated[
        bool,
        typer.Option("--force", help="Stop where it stands instead of rolling back."),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the rollback ends.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Cancel a deployment: a new deployment rolls its services back, or with --force it
    stops where it stands."""
    with connect(ctx) as client:
        back = client.cancel_deployment(deployment_id, force)
    if back is None:
        if as_json:
            print_json(None)
        else:
            say(f"{deployment_id}: cancelled where it stood")
        return
    report(
        ctx,
        back,
        f"{deployment_id}: cancelled; deployment {back.id} rolls it back",
        wait,
        as_json,
    )


def register(app: typer.Typer) -> None:
    """Add ``services``, ``deployments`` and the ``service`` and ``deployment`` groups."""
    app.command("services")(list_services)
    app.add_typer(service_app, name="service")
    app.command("deployments")(list_deployments)
    app.add_typer(deployment_app, name="deployment")
