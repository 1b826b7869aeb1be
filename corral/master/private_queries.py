"""``PrivateQueries``: the reads of a user who may read only their own work.

With private reads on (``corral master --private-reads``), a plain user's requests read through
these instead of ``Queries``: jobs, runs, tasks, services, deployments and events of other owners
are not there, so every route answers for them exactly what it answers for a name nobody uses
(a 404 in its API's own words, or a list without them), and no answer can tell the two apart.

What stays cluster-wide: agents (the nodes are everyone's), the account directory, the newest
event id, and whether a name is taken (``service_exists``, ``service_ids``): names are one
namespace, so creating a taken name must be refused whoever holds it. The fair-share report
(``share``) holds the reader's own line only: others' usage is others' work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from corral.master.jobs import NotFound
from corral.master.queries import Queries, Row
from corral.master.view import ClusterView, DeploymentInfo, ServiceInfo, TaskInfo
from corral.spec.share import ShareReport
from corral.store.accounts import creations
from corral.store.store import Store

CREATIONS = ("job_created", "service_created")  # the events that name a workload's owner


class PrivateQueries(Queries):
    """``Queries`` that answer only what ``reader`` owns (and what is nobody's: agents)."""

    def __init__(self, view: ClusterView, store: Store, reader: str) -> None:
        super().__init__(view, store)
        self.reader = self._only_owner = reader
        # Event id -> owner, per workload name, read once per stream.
        self._created: dict[str, dict[int, str]] = {}

    def share(self) -> ShareReport:
        """The reader's own line of the fair-share report."""
        report = super().share()
        return report.model_copy(
            update={"users": [u for u in report.users if u.user == self.reader]}
        )

    def _mine(self, workload: str) -> bool:
        return self.owner_of(workload) == self.reader

    # --- jobs and runs

    def job(self, name: str) -> Row | None:
        """The job's row if the reader owns it."""
        row = super().job(name)
        return row if row is not None and row["owner"] == self.reader else None

    def jobs(
        self,
        owner: str | None = None,
        q: str | None = None,
        *,
        limit: int | None = None,
        after: tuple[float, str] | None = None,
    ) -> Sequence[Row]:
        """The reader's jobs (none of another ``owner``)."""
        if owner not in (None, self.reader):
            return []
        return super().jobs(self.reader, q, limit=limit, after=after)

    def runs(self, job: str) -> Sequence[Row]:
        """Runs of the reader's job."""
        return super().runs(job) if self._mine(job) else []

    def run(self, job: str, number: int) -> Row | None:
        """A run of the reader's job."""
        return super().run(job, number) if self._mine(job) else None

    def run_counts(self, run: Row) -> dict[str, int]:
        """Tasks per state of a run of the reader's job."""
        return super().run_counts(run) if self._mine(run["job"]) else {}

    def last_skip(self, job: str) -> Row | None:
        """The newest skip record of the reader's job."""
        return super().last_skip(job) if self._mine(job) else None

    def children(self, job: str) -> list[str]:
        """The reader's jobs that depend on ``job``."""
        return [c for c in super().children(job) if self._mine(c)]

    # --- tasks

    def task_row(self, task_id: str) -> Row | None:
        """The reader's task."""
        row = super().task_row(task_id)
        return row if row is not None and row["owner"] == self.reader else None

    def task_events(self, task_id: str) -> Sequence[Row]:
        """The state history of the reader's task."""
        return super().task_events(task_id) if self.task_row(task_id) is not None else []

    def _own(self, tasks: Sequence[TaskInfo]) -> list[TaskInfo]:
        return [t for t in tasks if t.owner == self.reader]

    def live_task(self, task_id: str) -> TaskInfo | None:
        """The reader's unfinished task."""
        found = super().live_task(task_id)
        return found if found is not None and found.owner == self.reader else None

    def live_tasks(self) -> tuple[TaskInfo, ...]:
        """The reader's unfinished tasks."""
        return tuple(self._own(super().live_tasks()))

    def live_tasks_of(self, job: str) -> list[TaskInfo]:
        """The unfinished tasks of the reader's job or service."""
        return self._own(super().live_tasks_of(job))

    def waiting_tasks_of(self, job: str) -> list[TaskInfo]:
        """The waiting tasks of the reader's job or service."""
        return self._own(super().waiting_tasks_of(job))

    def service_tasks(self) -> list[TaskInfo]:
        """The unfinished tasks of the reader's services."""
        return self._own(super().service_tasks())

    # --- services and deployments

    def service(self, service_id: str) -> ServiceInfo | None:
        """The reader's service."""
        rec = super().service(service_id)
        return rec if rec is not None and rec.owner == self.reader else None

    def services(self) -> tuple[ServiceInfo, ...]:
        """The reader's services."""
        return tuple(r for r in super().services() if r.owner == self.reader)

    def service_of(self, service_id: str) -> ServiceInfo:
        """The reader's service; ``NotFound`` as for no service of that id."""
        rec = self.service(service_id)
        if rec is None:
            raise NotFound(f"service {service_id!r} not found")
        return rec

    def service_row(self, service_id: str) -> Row | None:
        """The stored row of the reader's service."""
        return super().service_row(service_id) if self._mine(service_id) else None

    def service_versions(self, service_id: str) -> Sequence[Row]:
        """The versions of the reader's service."""
        return super().service_versions(service_id) if self._mine(service_id) else []

    def service_version(self, service_id: str, version: str) -> Row | None:
        """One version of the reader's service."""
        return super().service_version(service_id, version) if self._mine(service_id) else None

    def _sees_deployment(self, deployment_id: str) -> bool:
        return self.reader in self.owners_of_deployment(deployment_id)

    def running_deployments(self) -> tuple[DeploymentInfo, ...]:
        """Running deployments that change a service of the reader's."""
        return tuple(d for d in super().running_deployments() if self._sees_deployment(d.id))

    def running_deployment(self, deployment_id: str) -> DeploymentInfo | None:
        """A running deployment that changes a service of the reader's."""
        dep = super().running_deployment(deployment_id)
        return dep if dep is not None and self._sees_deployment(deployment_id) else None

    def deployment_rows(self, running_only: bool) -> Sequence[Row]:
        """Stored deployments that change a service of the reader's."""
        rows = super().deployment_rows(running_only)
        return [r for r in rows if self._sees_deployment(r["id"])]

    def deployment_row(self, deployment_id: str) -> Row | None:
        """A stored deployment that changes a service of the reader's."""
        row = super().deployment_row(deployment_id)
        return row if row is not None and self._sees_deployment(deployment_id) else None

    # --- events

    def sees_event(self, event: Mapping[str, Any]) -> bool:
        """Whether an event is of the reader's work (as owned when it happened), or of no
        one's (an agent's)."""
        data = event.get("data") or {}
        if event.get("job"):
            return self._owner_at(str(event["job"]), event) == self.reader
        if isinstance(data, Mapping) and isinstance(data.get("id"), str):  # a deployment's
            return self._sees_deployment(data["id"])
        return True

    def _owner_at(self, workload: str, event: Mapping[str, Any]) -> str | None:
        """Who owned ``workload`` when ``event`` happened: a name may be deleted and taken by
        someone else, and an event stream replays the history of both."""
        history = self._created.get(workload)
        if history is None:
            history = self._created[workload] = dict(creations(self._store, workload))
        data = event.get("data") or {}
        if event.get("type") in CREATIONS and isinstance(data, Mapping) and "owner" in data:
            history[int(event["id"])] = str(data["owner"])  # a live event, newer than the read
        before = [owner for at, owner in sorted(history.items()) if at <= int(event["id"])]
        return before[-1] if before else self.owner_of(workload)

    def events_since(self, after: int, limit: int = 1000) -> Sequence[Row]:
        """The reader's events with ids above ``after``, oldest first, at most ``limit``:
        batches are read on until ``limit`` are found or the log ends."""
        found: list[Row] = []
        while len(found) < limit:
            batch = super().events_since(after, limit)
            found += [e for e in batch if self.sees_event(e)]
            if len(batch) < limit:
                break
            after = batch[-1]["id"]
        return found[:limit]
