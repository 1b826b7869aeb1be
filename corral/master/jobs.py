"""What users ask of jobs: submit, apply, run now, kill, delete. Each is one transaction."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

from sqlalchemy import RowMapping

from corral.master.admission import admit
from corral.master.applier import Applier, Kill
from corral.master.arming import timing
from corral.master.policy.dependencies import children_of
from corral.master.records import LiveTask
from corral.master.state import ClusterState
from corral.spec.jobs import JobSpec
from corral.spec.schedules import parse_schedule


class NotFound(LookupError):
    """The named object does not exist."""


class Conflict(Exception):
    """The request contradicts the current state (name taken, job still running...)."""


def runs_when_submitted(spec: JobSpec) -> bool:
    """A job without a schedule or parents is one-off: it runs when submitted."""
    return spec.schedule is None and not spec.parents


def anchored(spec: JobSpec) -> bool:
    """Whether the job's firings count from when it was defined (``R1//PT10M``)."""
    return spec.schedule is not None and parse_schedule(spec.schedule, spec.timezone).anchored


def with_arguments(spec: JobSpec, arguments: Sequence[str]) -> JobSpec:
    """The spec of one run with ``arguments`` appended to the command (Chronos' run-now)."""
    task = spec.task
    if not arguments:
        return spec
    if task.command is not None:
        return spec.model_copy(
            update={"task": task.model_copy(update={"command": [*task.command, *arguments]})}
        )
    if task.shell is not None:
        return spec.model_copy(
            update={
                "task": task.model_copy(update={"shell": f"{task.shell} {shlex.join(arguments)}"})
            }
        )
    # A container with the image's own command: the arguments become its command.
    return spec.model_copy(update={"task": task.model_copy(update={"command": list(arguments)})})


class JobOps:
    """The job operations the API offers, on top of ``ClusterState``."""

    def __init__(self, state: ClusterState, applier: Applier) -> None:
        self.state = state
        self.applier = applier

    def submit(self, spec: JobSpec, owner: str, group: str = "") -> None:
        """Store a new job of ``owner`` (counted to their ``group``); a one-off job starts its
        first run. ``Conflict`` if the name is taken, ``Refused`` if the cluster cannot run
        it."""
        if self.state.store.job(spec.name) is not None:
            raise Conflict(f"job {spec.name!r} already exists")
        admit(spec, self.state.agents.values(), self.state.specs)
        now = self.state.clock.now()
        columns, skipped = timing(spec, now)
        with self.state.change() as ch:
            runs = ch.tx.retired_runs(spec.name)  # task ids never repeat across a deletion
            ch.tx.insert_job(
                name=spec.name,
                owner=owner,
                owner_group=group,
                spec=spec.model_dump(mode="json"),
                runs=runs,
                created_at=now,
                updated_at=now,
                **columns,
            )
            data = {"owner": owner, "group": group}
            ch.tx.add_event(time=now, type="job_created", job=spec.name, data=data)
            ch.tx.add_events(skipped)
            ch.after(lambda: self._remember(spec))
            if runs_when_submitted(spec):
                self.applier.start_run(ch, spec, owner, runs + 1, now)

    def apply(
        self, spec: JobSpec, owner: str, group: str = "", *, rearm: bool = False
    ) -> tuple[bool, bool]:
        """Create or update a job. Returns (created, changed). A changed one-off job runs again;
        a changed schedule counts from now. ``rearm`` (Chronos' POST, which re-reads the
        schedule every time) counts an unchanged schedule that counts from its definition
        (``R1//PT10M``) from now too; one with a fixed start or cron keeps its timer, so a
        firing that already ran never runs twice."""
        row = self.state.store.job(spec.name)
        if row is None:
            self.submit(spec, owner, group)
            return True, True
        if JobSpec.stored(row["spec"]) == spec and not (rearm and anchored(spec)):
            return False, False
        admit(spec, self.state.agents.values(), self.state.specs)
        now = self.state.clock.now()
        columns, skipped = timing(spec, now)
        with self.state.change() as ch:
            ch.tx.update_job(
                spec.name, spec=spec.model_dump(mode="json"), updated_at=now, **columns
            )
            ch.tx.add_event(time=now, type="job_updated", job=spec.name)
            ch.tx.add_events(skipped)
            ch.after(lambda: self._remember(spec))
            if runs_when_submitted(spec):
                self.applier.start_run(ch, spec, row["owner"], row["runs"] + 1, now)
        return False, True

    def _remember(self, spec: JobSpec) -> None:
        self.state.specs[spec.name] = spec
        self.state.timers.set()

    def start_run(self, name: str, arguments: Sequence[str] = ()) -> int:
        """Start a new run of a job now, ``arguments`` appended to its command; answers its
        number."""
        row = self._job(name)
        spec = with_arguments(JobSpec.stored(row["spec"]), arguments)
        number = int(row["runs"]) + 1
        with self.state.change() as ch:
            self.applier.start_run(ch, spec, row["owner"], number, self.state.clock.now())
        return number

    def children(self, name: str) -> list[str]:
        """Jobs that name ``name`` among their parents."""
        return children_of(name, {n: s.parents for n, s in self.state.specs.items()})

    def kill(self, name: str, run: int | None = None) -> tuple[Kill, ...]:
        """Kill every live task of a job (or of one run). Answers the kills to send to agents;
        PENDING tasks end here and now."""
        self._job(name)
        victims = [t for t in self.state.index.of_job(name) if run is None or t.run == run]
        return self.kill_tasks(victims, "killed by user")

    def kill_tasks(self, victims: Iterable[LiveTask], reason: str) -> tuple[Kill, ...]:
        """Mark tasks as killed on request (``Applier.stop``); answers the kills to send."""
        with self.state.change() as ch:
            return self.applier.stop(ch, victims, reason, self.state.clock.now())

    def delete(self, name: str) -> None:
        """Delete a job with its runs and tasks. ``Conflict`` while tasks are live or other jobs
        depend on it."""
        self._job(name)
        children = self.children(name)
        if children:
            raise Conflict(
                f"job {name!r} is a parent of {', '.join(children)}: delete or change them first"
            )
        live = [t.id for t in self.state.tasks.values() if t.job == name]
        if live:
            raise Conflict(f"job {name!r} has {len(live)} unfinished tasks; kill it first")
        with self.state.change() as ch:
            ch.tx.delete_job(name)
            ch.tx.add_event(time=self.state.clock.now(), type="job_deleted", job=name)
            ch.after(lambda: self._forget_spec(name))
            ch.after(self.state.timers.set)

    def _forget_spec(self, name: str) -> None:
        self.state.specs.pop(name, None)

    def _job(self, name: str) -> RowMapping:
        row = self.state.store.job(name)
        if row is None:
            raise NotFound(f"job {name!r} not found")
        return row
