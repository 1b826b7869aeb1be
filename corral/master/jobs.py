"""What users ask of jobs: submit, apply, run now, kill, delete. Each is one transaction."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

from sqlalchemy import RowMapping

from corral.master.admission import admit
from corral.master.arming import timing
from corral.master.policy.dependencies import JobFacts, children_of, children_to_start
from corral.master.policy.effects import SkipRun
from corral.master.records import LiveTask
from corral.master.state import Change, ClusterState
from corral.master.work import run_tasks
from corral.spec.jobs import JobSpec
from corral.spec.schedules import parse_schedule
from corral.spec.states import RunState, TaskState


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

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        state.run_finished.append(self._after_run)

    def submit(self, spec: JobSpec, owner: str) -> None:
        """Store a new job; a one-off job starts its first run. ``Conflict`` if the name is
        taken, ``Refused`` if the cluster cannot run it."""
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
                spec=spec.model_dump(mode="json"),
                runs=runs,
                created_at=now,
                updated_at=now,
                **columns,
            )
            ch.tx.add_event(time=now, type="job_created", job=spec.name, data={"owner": owner})
            ch.tx.add_events(skipped)
            ch.after(lambda: self._remember(spec))
            if runs_when_submitted(spec):
                self.begin_run(ch, spec, owner, runs + 1, now)

    def apply(self, spec: JobSpec, owner: str, *, rearm: bool = False) -> tuple[bool, bool]:
        """Create or update a job. Returns (created, changed). A changed one-off job runs again;
        a changed schedule counts from now. ``rearm`` (Chronos' POST, which re-reads the
        schedule every time) counts an unchanged schedule that counts from its definition
        (``R1//PT10M``) from now too; one with a fixed start or cron keeps its timer, so a
        firing that already ran never runs twice."""
        row = self.state.store.job(spec.name)
        if row is None:
            self.submit(spec, owner)
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
                self.begin_run(ch, spec, row["owner"], row["runs"] + 1, now)
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
            self.begin_run(ch, spec, row["owner"], number, self.state.clock.now())
        return number

    def children(self, name: str) -> list[str]:
        """Jobs that name ``name`` among their parents."""
        return children_of(name, {n: s.parents for n, s in self.state.specs.items()})

    def _after_run(self, ch: Change, job: str, run: int, outcome: RunState, when: float) -> None:
        """Count the outcome, then start the children ``children_to_start`` names."""
        row = ch.tx.job(job)
        if row is None:
            return
        if outcome is RunState.SUCCEEDED:
            ch.tx.update_job(job, success_count=row["success_count"] + 1, last_success=when)
        elif outcome is RunState.FAILED:
            ch.tx.update_job(job, error_count=row["error_count"] + 1, last_error=when)
        if outcome is not RunState.SUCCEEDED:
            return  # no child starts (children_to_start): spare the reads of their facts
        children = self.children(job)
        family = {p for c in children for p in self.state.specs[c].parents} | set(children)
        facts = {name: f for name in sorted(family) if (f := self._facts(ch, name)) is not None}
        for effect in children_to_start(job, outcome, facts):
            if isinstance(effect, SkipRun):
                ch.tx.add_event(time=when, type="run_skipped", job=effect.job, reason=effect.reason)
            else:
                child = ch.tx.job(effect.job)
                if child is not None:  # always: its facts came from this transaction
                    spec = self.state.specs[effect.job]
                    number = child["runs"] + 1
                    self.begin_run(ch, spec, child["owner"], number, when, effect.reason)

    def _facts(self, ch: Change, name: str) -> JobFacts | None:
        """What the dependency policy needs of a job, as this change sees it (None: deleted)."""
        spec = self.state.specs.get(name)
        row = ch.tx.job(name)
        if spec is None or row is None:
            return None
        return JobFacts(
            parents=tuple(spec.parents),
            disabled=spec.disabled,
            concurrent=spec.concurrent,
            running=any(j == name for j, _ in self.state.runs),
            created_at=row["created_at"],
            last_run_start=ch.tx.last_run_start(name),
            last_success=row["last_success"],
        )

    def begin_run(
        self, ch: Change, spec: JobSpec, owner: str, number: int, now: float, reason: str = ""
    ) -> None:
        """Start run ``number`` of a job within the change ``ch`` (``reason``: why, if not a
        request)."""
        rows = run_tasks(spec, owner, number, now)
        ch.tx.insert_run(
            job=spec.name,
            number=number,
            state=RunState.PENDING.value,
            total=len(rows),
            created_at=now,
        )
        ch.tx.update_job(spec.name, runs=number)
        ch.tx.add_event(
            time=now, type="run_state", job=spec.name, run=number, state="PENDING", reason=reason
        )
        self.state.add_pending(ch, rows, now, "submitted")
        ch.after(lambda: self.state.runs.__setitem__((spec.name, number), RunState.PENDING))

    def kill(self, name: str, run: int | None = None) -> list[LiveTask]:
        """Kill every live task of a job (or of one run). Answers the tasks that need an agent
        to stop them; PENDING ones end here and now."""
        self._job(name)
        victims = [
            t for t in self.state.tasks.values() if t.job == name and (run is None or t.run == run)
        ]
        return self.kill_tasks(victims, "killed by user")

    def kill_tasks(self, victims: Iterable[LiveTask], reason: str) -> list[LiveTask]:
        """Mark tasks as killed on request; those on agents are returned to be stopped there."""
        on_agents: list[LiveTask] = []
        now = self.state.clock.now()
        with self.state.change() as ch:
            for task in victims:
                ch.tx.update_task(task.id, kill_requested=True)
                task.kill_requested = True
                agent = self.state.agents.get(task.agent_id or "")
                if task.state is TaskState.PENDING:
                    self.state.transition(ch, task, TaskState.KILLED, reason=reason, time=now)
                elif agent is None or not agent.connected:
                    # The agent will be told at reconnection: the task is terminal by then.
                    why = f"{reason} (agent not connected)"
                    self.state.transition(ch, task, TaskState.KILLED, reason=why, time=now)
                else:
                    on_agents.append(task)
        return on_agents

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
