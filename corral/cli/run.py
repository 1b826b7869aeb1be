"""``corral run``: submit a command as a job, optionally as an array or sweep, and wait."""

from __future__ import annotations

from typing import Annotated

import typer

from corral.cli.context import connect
from corral.cli.output import print_json, say
from corral.spec.sweeps import sweep_size

HELP = """Run CMD [ARGS]... as a job on the cluster.

The command runs without a shell (argv) unless --shell is given, which joins the arguments with
spaces into one /bin/sh line. A single argument containing spaces is treated as a shell line
too: `corral run "make -j4 && ./test"`. Options go before CMD; everything from CMD on belongs to
the command (write `--` first if CMD starts with '-').

Arrays and sweeps make one task per combination: `--array 0-9` sets CORRAL_ARRAY_INDEX and
`{index}`, `--param N=a,b` replaces `{N}` in the command.

A gang (`--nodes 4 --tasks-per-node 2`) is an MPI job: its 8 ranks are placed together on 4
distinct agents, or wait together; rank 0 runs CMD (an unmodified `mpirun` finds the hostfile
and starts its daemons in the other ranks through Corral) unless --every-rank is given. One
rank failing stops the gang and retries it whole (`--retries`). See docs/mpi.md.

With --wait, exits 0 if the run SUCCEEDED and 1 if it FAILED or was KILLED.
"""


def run(
    ctx: typer.Context,
    command: Annotated[list[str] | None, typer.Argument(metavar="CMD", show_default=False)] = None,
    name: Annotated[str | None, typer.Option(help="Job name (default: run-<6 hex>).")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs per task (default: 1).")] = None,
    mem: Annotated[int | None, typer.Option(help="Memory per task, MiB (default: 128).")] = None,
    disk: Annotated[int | None, typer.Option(help="Disk per task, MiB (default: 0).")] = None,
    gpus: Annotated[
        int | None, typer.Option(help="GPUs per task, its own while it runs (default: 0).")
    ] = None,
    array: Annotated[
        str | None, typer.Option(help="Array indices: '0-95', '1,3,5-7', '0-99:2'.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Sweep: NAME=v1,v2,... (repeatable).")
    ] = None,
    nodes: Annotated[
        int | None,
        typer.Option(help="Run as a gang (MPI) on this many distinct agents, placed together."),
    ] = None,
    tasks_per_node: Annotated[
        int | None, typer.Option(help="Ranks of the gang on each node (default: 1).")
    ] = None,
    every_rank: Annotated[
        bool,
        typer.Option(
            "--every-rank", help="Run CMD on every rank of the gang, not on rank 0 only (mpirun)."
        ),
    ] = False,
    env: Annotated[list[str] | None, typer.Option(help="K=V for the task (repeatable).")] = None,
    retries: Annotated[int | None, typer.Option(help="Extra attempts per failed task.")] = None,
    max_runtime: Annotated[
        float | None, typer.Option(help="Seconds before a still-running task is failed.")
    ] = None,
    workdir: Annotated[str | None, typer.Option(help="Working directory of the task.")] = None,
    shell: Annotated[
        bool, typer.Option("--shell", help="Run the arguments with /bin/sh -c.")
    ] = False,
    image: Annotated[
        str | None, typer.Option(help="Run in a container of this Docker image.")
    ] = None,
    volume: Annotated[
        list[str] | None,
        typer.Option(help="HOST:CONTAINER[:ro|:rw] bind mount into the container (repeatable)."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the job (or run) as JSON.")
    ] = False,
) -> None:
    """Submit CMD [ARGS]... as a job; its help is ``HELP``."""
    from corral.cli.specs import (  # the spec models: loaded only when submitting
        build_spec,
        command_fields,
        docker_fields,
        generated_name,
        params_from_options,
        split_pairs,
        without_none,
    )

    task = without_none(
        {
            "cpus": cpus,
            "mem": mem,
            "disk": disk,
            "gpus": gpus,
            "max_runtime": max_runtime,
            "workdir": workdir,
        }
    )
    if command or image is None:  # a container may run its image's own command
        task |= command_fields(command or [], shell)
    task |= {"env": dict(split_pairs(env or [], "--env"))}
    task |= docker_fields(image, volume or [])
    spec = build_spec(
        without_none(
            {
                "name": name or generated_name(),
                "task": task,
                "array": array,
                "params": params_from_options(param or []),
                "retries": retries,
                "nodes": nodes,
                "tasks_per_node": tasks_per_node,
                "every_rank": every_rank or None,
            }
        )
    )
    with connect(ctx) as client:
        job = client.create_job(spec)
    number = job.last_run.number if job.last_run else 1
    if wait:
        from corral.cli.follow import wait_and_exit

        wait_and_exit(ctx, job.name, number, as_json)
    elif as_json:
        print_json(job)
    else:
        total = job.last_run.total if job.last_run else sweep_size(spec.array, spec.params)
        say(f"{job.name}: run {number} started, {total} task{'s' * (total != 1)}")


def register(app: typer.Typer) -> None:
    """Add ``run`` to the app."""
    app.command(
        "run",
        help=HELP,
        # Everything after CMD belongs to CMD: `corral run ls -l` must not read -l as an option.
        context_settings={"allow_interspersed_args": False},
    )(run)
