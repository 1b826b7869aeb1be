"""How each API view is shown: table columns and detail grids for jobs, runs, tasks, agents.

The job listings show rows (``corral.client.rows``), everything else the pydantic views, which
are named here for the type checker only: a listing loads no models.
"""

from __future__ import annotations

import shlex
from datetime import UTC
from typing import TYPE_CHECKING, Protocol

from rich.table import Table

from corral.cli.output import (
    Cell,
    Column,
    ago,
    counts,
    duration,
    fields,
    instant,
    state,
    table,
    when,
)
from corral.spec.sweeps import sweep_size

if TYPE_CHECKING:
    from corral.client.rows import JobRow
    from corral.spec.jobs import JobSpec
    from corral.spec.views import (
        AgentView,
        FiringView,
        JobView,
        RunView,
        SkipView,
        TaskEventView,
        TaskView,
    )


class Resources(Protocol):
    """What a task asks for or an agent has: a ``ResourcesView`` or a task template."""

    @property
    def cpus(self) -> float: ...

    @property
    def mem(self) -> int: ...

    @property
    def disk(self) -> int: ...

    @property
    def gpus(self) -> int: ...


def command_line(command: list[str] | None, shell: str | None) -> str:
    """The task's command as a user would type it."""
    if shell is not None:
        return shell
    return shlex.join(command or [])


def latest_attempts(tasks: list[TaskView]) -> list[TaskView]:
    """Each slot's latest attempt, in slot order: what a run's outcome is made of."""
    latest: dict[int, TaskView] = {}
    for task in tasks:
        if task.slot not in latest or task.attempt > latest[task.slot].attempt:
            latest[task.slot] = task
    return [latest[slot] for slot in sorted(latest)]


def resources(r: Resources) -> str:
    """``2 cpus, 512 MiB`` plus disk and gpus when asked for."""
    out = f"{r.cpus:g} cpu{'' if r.cpus == 1 else 's'}, {r.mem} MiB"
    if r.disk:
        out += f", {r.disk} MiB disk"
    if r.gpus:
        out += f", {r.gpus} gpus"
    return out


def _usage(used: float, total: float) -> str:
    return f"{used:g}/{total:g}"


def _gpus(agent: AgentView) -> str:
    """GPUs used/total and the indices still free (``1/2 free 1``); ``-`` without GPUs."""
    if not agent.gpus:
        return "-"
    free = ",".join(str(g.index) for g in agent.gpus if g.task is None) or "none"
    return f"{_usage(agent.used.gpus, agent.total.gpus)} free {free}"


def _last_run_state(job: JobRow) -> Cell:
    run = job["last_run"]
    return state(run["state"]) if run else ""


def _last_run_counts(job: JobRow) -> Cell:
    run = job["last_run"]
    return counts(run["counts"], run["total"]) if run else ""


JOB_COLUMNS: list[Column[JobRow]] = [
    Column("NAME", lambda j: j["name"]),
    Column("OWNER", lambda j: j["owner"]),
    Column("RUNS", lambda j: str(j["runs"]), "right"),
    Column("LAST RUN", _last_run_state),
    Column("TASKS", _last_run_counts, wrap=True),
    Column("UPDATED", lambda j: when(instant(j["updated_at"]))),
]

SCHEDULED_COLUMNS: list[Column[JobRow]] = [
    Column("NAME", lambda j: j["name"]),
    Column("SCHEDULE", lambda j: f"{j['spec']['schedule']} ({j['spec']['timezone']})"),
    Column("NEXT RUN", lambda j: when(instant(j["next_run"]))),
    Column("LAST RUN", _last_run_state),
    Column("OK", lambda j: str(j["success_count"]), "right"),
    Column("FAILED", lambda j: str(j["error_count"]), "right"),
]

RUN_COLUMNS: list[Column[RunView]] = [
    Column("RUN", lambda r: str(r.number), "right"),
    Column("STATE", lambda r: state(r.state)),
    Column("TASKS", lambda r: counts(r.counts, r.total), wrap=True),
    Column("CREATED", lambda r: when(r.created_at)),
    Column("TOOK", lambda r: duration(r.created_at, r.finished_at)),
]

TASK_COLUMNS: list[Column[TaskView]] = [
    Column("ID", lambda t: t.id),
    Column("STATE", lambda t: state(t.state)),
    Column("EXIT", lambda t: "" if t.exit_code is None else str(t.exit_code), "right"),
    Column("HOST", lambda t: t.hostname or ""),
    Column("STARTED", lambda t: when(t.started_at)),
    Column("TOOK", lambda t: duration(t.started_at, t.finished_at)),
    Column("REASON", lambda t: t.reason, wrap=True),
]

AGENT_COLUMNS: list[Column[AgentView]] = [
    Column("ID", lambda a: a.id),
    Column("HOST", lambda a: a.hostname),
    Column("STATE", lambda a: state(a.state) if a.connected else state("DISCONNECTED")),
    Column("CPUS", lambda a: _usage(a.used.cpus, a.total.cpus), "right"),
    Column("MEM MiB", lambda a: _usage(a.used.mem, a.total.mem), "right"),
    Column("DISK MiB", lambda a: _usage(a.used.disk, a.total.disk), "right"),
    Column("GPUS", lambda a: _gpus(a), "right"),
    Column("HEARTBEAT", lambda a: ago(a.last_heartbeat)),
    Column("DRIVERS", lambda a: ", ".join(a.drivers), wrap=True),
]

EVENT_COLUMNS: list[Column[TaskEventView]] = [
    Column("TIME", lambda e: when(e.time)),
    Column("STATE", lambda e: state(e.state)),
    Column("REASON", lambda e: e.reason, wrap=True),
    Column("AGENT", lambda e: e.agent_id or ""),
]


def job_fields(job: JobView) -> Table:
    """The job's identity and a summary of its spec."""
    spec = job.spec
    t = spec.task
    return fields(
        [
            ("name", job.name),
            ("owner", job.owner),
            ("description", spec.description),
            ("command", command_line(t.command, t.shell)),
            ("resources", resources(t)),
            ("tasks per run", _sweep(spec)),
            (
                "retries",
                f"{spec.retries} (backoff {spec.retry_backoff:g}s)" if spec.retries else None,
            ),
            ("max runtime", f"{t.max_runtime:g}s" if t.max_runtime else None),
            ("workdir", t.workdir),
            ("env", " ".join(f"{k}={v}" for k, v in t.env.items())),
            ("schedule", schedule_text(job)),
            ("next firings", "\n".join(firing_text(f, spec.timezone) for f in job.upcoming)),
            ("last skipped", None if job.last_skip is None else skip_text(job.last_skip)),
            ("created", when(job.created_at)),
            ("updated", when(job.updated_at)),
        ]
    )


def schedule_text(job: JobView) -> str | None:
    """The schedule with its zone, what is left of it, and whether it is switched off."""
    spec = job.spec
    if spec.schedule is None:
        return None
    text = f"{spec.schedule} ({spec.timezone})"
    if job.remaining is not None:
        text += f", {job.remaining} firing{'s' * (job.remaining != 1)} left"
    if spec.disabled:
        text += "; disabled: it fires nothing, `corral job run` still starts a run"
    return text


def firing_text(firing: FiringView, zone: str) -> str:
    """One upcoming firing in the job's zone and in UTC, so DST questions answer themselves."""
    local = firing.local.strftime("%Y-%m-%d %H:%M:%S %z")
    return f"{local} {zone}  =  {firing.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def skip_text(skip: SkipView) -> str:
    """How many firings were not run, which, and why."""
    span = ""
    if skip.first is not None and skip.last is not None:
        first, last = (f"{t.astimezone(UTC):%Y-%m-%d %H:%M:%S}" for t in (skip.first, skip.last))
        span = f" at {first} UTC" if first == last else f" from {first} to {last} UTC"
    n = "firings" if skip.count is None else f"{skip.count} firing{'s' * (skip.count != 1)}"
    return f"{n}{span}: {skip.reason}"


def _sweep(spec: JobSpec) -> str:
    parts = [f"array {spec.array}"] if spec.array else []
    parts += [f"{name}={','.join(values)}" for name, values in spec.params.items()]
    n = sweep_size(spec.array, spec.params)
    return f"{n}" + (f" ({'; '.join(parts)})" if parts else "")


def task_fields(task: TaskView) -> Table:
    """Everything about one task except its history."""
    return fields(
        [
            ("id", task.id),
            ("job", f"{task.job} run {task.run}"),
            ("slot", f"{task.slot} (index {task.index}, attempt {task.attempt})"),
            ("state", state(task.state)),
            ("reason", task.reason),
            ("exit code", None if task.exit_code is None else str(task.exit_code)),
            ("agent", f"{task.hostname or ''} ({task.agent_id})" if task.agent_id else None),
            ("command", command_line(task.command, task.shell)),
            ("resources", resources(task.resources)),
            ("created", when(task.created_at)),
            ("started", when(task.started_at)),
            ("finished", when(task.finished_at)),
            ("took", duration(task.started_at, task.finished_at)),
            ("retry not before", when(task.not_before) if task.state == "PENDING" else None),
            ("preempted by", task.preempted_by),
            ("requeued", f"{task.requeues} times after preemption" if task.requeues else None),
        ]
    )


def task_history(task: TaskView) -> Table:
    """The task's state transitions, oldest first."""
    return table(task.events or [], EVENT_COLUMNS, title="history")
