"""What users ask of jobs: submit, apply, run now, kill, delete. Each is one transaction."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import RowMapping

from corral.master.admission import admit
from corral.master.records import LiveTask
from corral.master.state import Change, ClusterState
from corral.master.work import run_tasks
from corral.spec.jobs import JobSpec
from corral.spec.states import RunState, TaskState


class NotFound(LookupError):
    """The named object does not exist."""


class Conflict(Exception):
    """The request contradicts the current state (name taken, job still running...)."""


class JobOps:
    """The job operations the API offers, on top of ``ClusterState``."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state

    def submit(self, spec: JobSpec, owner: str) -> None:
        """Store a new job and start its first run. ``Conflict`` if the name is taken."""
        if self.state.store.job(spec.name) is not None:
            raise Conflict(f"job {spec.name!r} already exists")
        admit(spec, self.state.agents.values())
        now = self.state.clock.now()
        with self.state.change() as ch:
            ch.tx.insert_job(
                name=spec.name,
                owner=owner,
                spec=spec.model_dump(mode="json"),
                runs=0,
                created_at=now,
                updated_at=now,
            )
            ch.tx.add_event(time=now, type="job_created", job=spec.name, data={"owner": owner})
            ch.after(lambda: self.state.specs.__setitem__(spec.name, spec))
            self._start_run(ch, spec, owner, 1, now)

    def apply(self, spec: JobSpec, owner: str) -> tuple[bool, bool]:
        """Create or update a job. Returns (created, changed); a changed spec starts a run."""
        row = self.state.store.job(spec.name)
        if row is None:
            self.submit(spec, owner)
            return True, True
        if JobSpec.model_validate(row["spec"]) == spec:
            return False, False
        admit(spec, self.state.agents.values())
        now = self.state.clock.now()
        with self.state.change() as ch:
            ch.tx.update_job(spec.name, spec=spec.model_dump(mode="json"), updated_at=now)
            ch.tx.add_event(time=now, type="job_updated", job=spec.name)
            ch.after(lambda: self.state.specs.__setitem__(spec.name, spec))
            self._start_run(ch, spec, row["owner"], row["runs"] + 1, now)
        return False, True

    def start_run(self, name: str) -> int:
        """Start a new run of a job now; answers its number."""
        row = self._job(name)
        spec = JobSpec.model_validate(row["spec"])
        number = int(row["runs"]) + 1
        with self.state.change() as ch:
            self._start_run(ch, spec, row["owner"], number, self.state.clock.now())
        return number

    def _start_run(self, ch: Change, spec: JobSpec, owner: str, number: int, now: float) -> None:
        rows = run_tasks(spec, owner, number, now)
        ch.reschedule = True
        ch.tx.insert_run(
            job=spec.name,
            number=number,
            state=RunState.PENDING.value,
            total=len(rows),
            created_at=now,
        )
        ch.tx.update_job(spec.name, runs=number)
        ch.tx.insert_tasks(rows)
        ch.tx.add_event(time=now, type="run_state", job=spec.name, run=number, state="PENDING")
        ch.tx.add_events(
            [
                {
                    "time": now,
                    "type": "task_state",
                    "job": spec.name,
                    "run": number,
                    "task_id": r["id"],
                    "state": "PENDING",
                    "reason": "submitted",
                }
                for r in rows
            ]
        )

        def remember() -> None:
            self.state.runs[(spec.name, number)] = RunState.PENDING
            for r in rows:
                self.state.add_live(LiveTask.from_row({**r, "agent_id": None, "not_before": None}))

        ch.after(remember)

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
        """Delete a job with its runs and tasks. ``Conflict`` while tasks are live."""
        self._job(name)
        live = [t.id for t in self.state.tasks.values() if t.job == name]
        if live:
            raise Conflict(f"job {name!r} has {len(live)} unfinished tasks; kill it first")
        with self.state.change() as ch:
            ch.tx.delete_job(name)
            ch.tx.add_event(time=self.state.clock.now(), type="job_deleted", job=name)
            ch.after(lambda: self._forget_spec(name))

    def _forget_spec(self, name: str) -> None:
        self.state.specs.pop(name, None)

    def _job(self, name: str) -> RowMapping:
        row = self.state.store.job(name)
        if row is None:
            raise NotFound(f"job {name!r} not found")
        return row
