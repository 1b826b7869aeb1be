"""Accounting: what each user or group used over a window of time, as Slurm's ``sreport`` and
``sacct`` say it (``corral usage``).

Pure: the store reads the task attempts that ran in the window or ended in it (``Spans``),
and :func:`tally` sums them. A task's resources count from when it started running until it
ended (or until ``now`` while it runs), clipped to the window: cpu-hours, mem-GiB-hours and
gpu-hours. Its outcome counts in the window it ended in: finished, failed (FAILED or ERROR),
killed, lost, or preempted (killed to make room for another user's task; its slot was
requeued).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from corral.spec.states import TaskState

By = Literal["user", "group"]
OUTCOMES = ("finished", "failed", "killed", "lost", "preempted")
_OUTCOME_OF = {
    TaskState.FINISHED: "finished",
    TaskState.FAILED: "failed",
    TaskState.ERROR: "failed",
    TaskState.KILLED: "killed",
    TaskState.LOST: "lost",
}
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Span:
    """One task attempt as accounting sees it."""

    owner: str
    group: str  # the primary group its work was counted to ("" if none)
    millicpus: int
    mem: int  # MiB
    gpus: int
    state: TaskState
    started_at: float | None  # when it started running (None: it never did)
    finished_at: float | None  # when it ended (None: not yet)
    preempted: bool = False  # it ended to make room for another user's task


@dataclass(slots=True)
class Usage:
    """What one user or group used in the window."""

    name: str
    cpu_hours: float = 0.0
    mem_gib_hours: float = 0.0
    gpu_hours: float = 0.0
    tasks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    def add(self, other: Usage) -> None:
        """Add ``other``'s figures to these."""
        self.cpu_hours += other.cpu_hours
        self.mem_gib_hours += other.mem_gib_hours
        self.gpu_hours += other.gpu_hours
        for outcome, n in other.tasks.items():
            self.tasks[outcome] += n


def outcome(state: TaskState, preempted: bool) -> str | None:
    """The outcome an ended task counts under (None: it has not ended)."""
    if state is TaskState.KILLED and preempted:
        return "preempted"
    return _OUTCOME_OF.get(state)


def running_seconds(span: Span, since: float, until: float, now: float) -> float:
    """How long ``span`` ran within ``[since, until)``; a task still running runs until
    ``now``."""
    if span.started_at is None:
        return 0.0
    end = span.finished_at if span.finished_at is not None else now
    return max(0.0, min(end, until) - max(span.started_at, since))


def tally(
    spans: Iterable[Span], since: float, until: float, now: float, by: By = "user"
) -> list[Usage]:
    """The usage of each user (``by="user"``) or group in ``[since, until)``, by name."""
    found: dict[str, Usage] = {}
    for span in spans:
        name = span.owner if by == "user" else span.group
        usage = found.get(name)
        if usage is None:
            usage = found[name] = Usage(name)
        hours = running_seconds(span, since, until, now) / HOUR
        usage.cpu_hours += span.millicpus / 1000 * hours
        usage.mem_gib_hours += span.mem / 1024 * hours
        usage.gpu_hours += span.gpus * hours
        ended = outcome(span.state, span.preempted)
        if ended is not None and span.finished_at is not None and since <= span.finished_at < until:
            usage.tasks[ended] += 1
    return [found[name] for name in sorted(found)]


def total(rows: Iterable[Usage]) -> Usage:
    """The sum of ``rows``."""
    found = Usage("")
    for row in rows:
        found.add(row)
    return found


def span_of(row: Mapping[Any, Any]) -> Span:
    """The span of a row of ``Store.usage_rows``."""
    return Span(
        owner=row["owner"],
        group=row["group"] or "",
        millicpus=round((row["cpus"] or 0.0) * 1000),
        mem=row["mem"] or 0,
        gpus=row["gpus"] or 0,
        state=TaskState(row["state"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        preempted=row["preempted_by"] is not None,
    )
