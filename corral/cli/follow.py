"""Waiting for a run to end (``--wait``): the event stream wakes us, the run view is the truth.

Counting task states from events alone would need every event since the run began; instead
each burst of this run's events triggers one fetch of its ``RunView``. A slow poll runs anyway
in case an event was missed while the stream connected, and a fast poll takes over when the
master does not stream events at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from corral.cli.context import EXIT_FAILED, EXIT_INTERRUPTED, connect_async
from corral.cli.output import console, counts, duration, err_console, print_json, say
from corral.cli.views import latest_attempts
from corral.client import AsyncClient, ClientError
from corral.spec.states import RunState, TaskState
from corral.spec.views import RunView, TaskView
from corral.waits import wait_event

POLL = 0.5  # seconds between fetches when there is no event stream
SAFETY_POLL = 1.0  # with a stream: fetch at least this often, in case an event was missed
COALESCE = 0.1  # after an event, wait this long for its siblings: one fetch per burst
SHOW_FAILED = 5  # failed tasks listed in the summary
FAILED_SCAN = 10_000  # tasks read to find them: enough for any run a summary can usefully list

_UNSUCCESSFUL = (TaskState.FAILED, TaskState.KILLED, TaskState.LOST, TaskState.ERROR)


async def follow_run(
    client: AsyncClient, job: str, number: int, on_update: Callable[[RunView], None]
) -> RunView:
    """Call ``on_update`` with each new view of run ``number`` of ``job``; return the last."""
    wake = asyncio.Event()
    listener = asyncio.create_task(_listen(client, job, number, wake))
    try:
        while True:
            view = await client.run(job, number)
            on_update(view)
            if view.state.terminal:
                return view
            await nap(wake, POLL if listener.done() else SAFETY_POLL)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def _listen(client: AsyncClient, job: str, number: int, wake: asyncio.Event) -> None:
    """Set ``wake`` on every event of this run; end quietly if the stream fails or ends."""
    try:
        # Only this job's events: a run of thousands of tasks streams five events a task.
        async with contextlib.aclosing(client.events(job=job)) as events:
            async for event in events:
                if event.run in (None, number):
                    wake.set()
    except ClientError:
        return  # no stream (or it broke): follow_run polls faster once this task is done


async def nap(wake: asyncio.Event, timeout: float) -> None:
    """Sleep until ``wake`` is set (then a little longer, to take in the burst) or ``timeout``."""
    if not await wait_event(wake, timeout):
        return
    await asyncio.sleep(COALESCE)
    wake.clear()


class RunProgress:
    """A progress bar on stderr: tasks ended out of the total, with done/failed/running."""

    def __init__(self, job: str, number: int, enabled: bool) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=not enabled,
        )
        self._label = f"{job} run {number}"
        self._task = self._progress.add_task(self._label, total=None, detail="")

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, view: RunView) -> None:
        """Show a new view of the run."""
        done = view.counts.get(TaskState.FINISHED, 0)
        failed = sum(view.counts.get(s, 0) for s in _UNSUCCESSFUL)
        running = sum(view.counts.get(s, 0) for s in TaskState if s.active)
        self._progress.update(
            self._task,
            description=f"{self._label} {view.state}",
            total=view.total,
            completed=done + failed,
            detail=f"{done} done, {failed} failed, {running} running",
        )


async def _wait(
    client: AsyncClient, job: str, number: int, progress: bool
) -> tuple[RunView, list[TaskView]]:
    with RunProgress(job, number, enabled=progress) as bar:
        view = await follow_run(client, job, number, bar.update)
    failed: list[TaskView] = []
    if view.state != RunState.SUCCEEDED:
        # A failed attempt may have been retried: only a slot's latest attempt says how it ended.
        tasks = await client.tasks(job=job, run=number, limit=FAILED_SCAN)
        failed = [t for t in latest_attempts(tasks) if t.state in _UNSUCCESSFUL]
    return view, failed


def wait_and_exit(ctx: typer.Context, job: str, number: int, as_json: bool) -> None:
    """Follow a run to its end, print a summary (or its view), and exit 0 only if it succeeded."""

    async def main() -> tuple[RunView, list[TaskView]]:
        async with connect_async(ctx) as client:
            return await _wait(client, job, number, progress=not as_json)

    try:
        view, failed = asyncio.run(main())
    except KeyboardInterrupt:
        typer.echo(f"stopped waiting; the run goes on (`corral job kill {job}` stops it)", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        print_json(view)
    else:
        _summary(view, failed)
    raise typer.Exit(0 if view.state == RunState.SUCCEEDED else EXIT_FAILED)


def _summary(view: RunView, failed: list[TaskView]) -> None:
    took = duration(view.created_at, view.finished_at)
    console.print(
        f"run {view.number} of {view.job} {view.state} in {took}: ",
        counts(view.counts, view.total),
        sep="",
    )
    for task in failed[:SHOW_FAILED]:
        code = "" if task.exit_code is None else f" exit {task.exit_code}"
        say(f"  {task.id} {task.state}{code}: {task.reason}")
    if len(failed) > SHOW_FAILED:
        say(f"  ... and {len(failed) - SHOW_FAILED} more (`corral tasks --job {view.job}`)")
    if failed:
        say(f"  (see `corral logs {failed[0].id} --stderr`)")
