"""``Queries``: every read the API makes, over the live ``ClusterView`` and the store.

The API's routes and renderers read only through here (writes go through the ``Master``'s
commands), so that what they may see of the master is one list of named reads: live records
come from the view (typed read-only, see ``corral.master.view``), history from the store as
rows (plain mappings, read-only by their type).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from corral.master.accounts import AccountQueries
from corral.master.jobs import NotFound
from corral.master.share_report import share_report
from corral.master.usage import By, Usage, span_of, tally
from corral.master.view import AgentInfo, ClusterView, DeploymentInfo, ServiceInfo, TaskInfo
from corral.spec.share import ShareReport
from corral.spec.states import TaskState
from corral.store import accounts as account_rows
from corral.store.bulk import counts_of
from corral.store.store import Store

Row = Mapping[Any, Any]  # store rows (RowMapping): read-only mappings


class Queries:
    """Named reads of jobs, runs, tasks, agents, services, deployments and events."""

    _only_owner: str | None = None  # whose tasks the task lists hold (None: everyone's)

    def __init__(self, view: ClusterView, store: Store) -> None:
        self._view = view
        self._store = store
        self.accounts = AccountQueries(store, view.now)

    def now(self) -> float:
        """The master's clock."""
        return self._view.now()

    # --- fair share

    def share(self) -> ShareReport:
        """Every user's weight, quotas, decayed usage, share, running and waiting work."""
        fair_share = self._view.fair_share
        assert fair_share is not None  # a master's view always has it
        users = account_rows.all_users(self._store)
        return share_report(
            fair_share, self._view.agents(), self._view.tasks(), users, self._view.now()
        )

    # --- jobs and runs (stored)

    def job(self, name: str) -> Row | None:
        """A job's row (None: no such job)."""
        return self._store.job(name)

    def jobs(
        self,
        owner: str | None = None,
        q: str | None = None,
        *,
        limit: int | None = None,
        after: tuple[float, str] | None = None,
    ) -> Sequence[Row]:
        """Job rows, newest first, of ``owner`` and matching ``q``: at most ``limit``, after
        the job created at ``after[0]`` named ``after[1]``."""
        return self._store.jobs(owner, q, limit=limit, after=after)

    def runs(self, job: str) -> Sequence[Row]:
        """A job's runs, newest first."""
        return self._store.runs(job)

    def run(self, job: str, number: int) -> Row | None:
        """One run of a job (None: no such run)."""
        rows = self._store.runs(job, number)
        return rows[0] if rows else None

    def run_counts(self, run: Row) -> dict[str, int]:
        """A run's tasks per state (newest attempts), from its row."""
        return counts_of(run)

    def last_skip(self, job: str) -> Row | None:
        """The newest ``run_skipped`` event of a job."""
        return self._store.last_skip(job)

    def children(self, job: str) -> list[str]:
        """Jobs that name ``job`` among their parents."""
        return self._view.children(job)

    # --- tasks

    def task_row(self, task_id: str) -> Row | None:
        """A task's stored row, live or finished (None: no such task)."""
        return self._store.task(task_id)

    def task_rows(
        self,
        *,
        state: TaskState | None = None,
        job: str | None = None,
        run: int | None = None,
        agent: str | None = None,
        limit: int | None = None,
        after: int | None = None,
    ) -> Sequence[Row]:
        """Stored tasks matching every filter, in creation order, at most ``limit``, after
        the task whose ``seq`` is ``after`` (a page's cursor)."""
        value = None if state is None else state.value
        owner = self._only_owner  # filtered in the store, so that ``limit`` counts what is shown
        return self._store.tasks(
            state=value, job=job, run=run, agent=agent, owner=owner, limit=limit, after=after
        )

    def task_rows_by_id(self, ids: Sequence[str]) -> Sequence[Row]:
        """The stored tasks of these ids, in creation order (one read for them all)."""
        rows = self._store.tasks_by_id(ids)
        owner = self._only_owner
        return rows if owner is None else [r for r in rows if r["owner"] == owner]

    def task_counts(self) -> dict[TaskState, int]:
        """Every stored task per state (kept as they change: no count of the tasks)."""
        return self._view.task_counts(self._only_owner)

    def failures(self, limit: int) -> Sequence[Row]:
        """The tasks that failed, were lost or could not run most recently, newest first."""
        return self._store.failures(limit, owner=self._only_owner)

    def task_events(self, task_id: str) -> Sequence[Row]:
        """A task's state history, oldest first."""
        return self._store.task_events(task_id)

    def live_task(self, task_id: str) -> TaskInfo | None:
        """A task that is not finished (None: finished or unknown)."""
        return self._view.task(task_id)

    def live_tasks(self) -> tuple[TaskInfo, ...]:
        """Every task that is not finished."""
        return self._view.tasks()

    def live_tasks_of(self, job: str) -> list[TaskInfo]:
        """The unfinished tasks of a job or service, oldest first."""
        return sorted(self._view.tasks_of_job(job), key=lambda t: (t.created_at, t.id))

    def waiting_tasks_of(self, job: str) -> list[TaskInfo]:
        """The tasks of a job or service waiting to be placed (not being killed), in the
        order they came."""
        return [
            t
            for t in self._view.tasks_of_job(job)
            if t.state is TaskState.PENDING and not t.kill_requested
        ]

    def service_tasks(self) -> list[TaskInfo]:
        """The unfinished tasks of every service, by service id, then oldest first."""
        ids = sorted(j for j in self._view.jobs_with_tasks() if j.startswith("/"))
        # Sorted by creation time only: tasks created together keep the order they came in.
        return [t for sid in ids for t in sorted(self._view.tasks_of_job(sid), key=_created_at)]

    def usage(self, since: float, until: float, by: By = "user") -> list[Usage]:
        """What each user (or group) used in ``[since, until)``: accounting, from the stored
        tasks (only the reader's own where reads are private)."""
        rows = self._store.usage_rows(since, until, self._only_owner)
        return tally(map(span_of, rows), since, until, self.now(), by)

    # --- agents

    def agent(self, agent_id: str | None) -> AgentInfo | None:
        """An agent (None: unknown, or None given)."""
        return self._view.agent(agent_id)

    def agents(self) -> tuple[AgentInfo, ...]:
        """Every agent the master knows."""
        return self._view.agents()

    def gpu_holders(self, agent_id: str) -> dict[int, str]:
        """GPU index -> the live task holding it, on an agent."""
        return {i: t.id for t in self._view.tasks_on_agent(agent_id) for i in t.devices}

    def hostname(self, agent_id: str | None) -> str | None:
        """The host name of an agent (None: unknown, or None given)."""
        agent = self._view.agent(agent_id)
        return None if agent is None else agent.hostname

    # --- services and deployments

    def service(self, service_id: str) -> ServiceInfo | None:
        """A service's live record (None: no such service)."""
        return self._view.service(service_id)

    def services(self) -> tuple[ServiceInfo, ...]:
        """Every service, by id."""
        return self._view.services()

    def service_of(self, service_id: str) -> ServiceInfo:
        """A service's live record; ``NotFound`` if there is none of that id."""
        found = self._view.service(service_id)
        if found is None:
            raise NotFound(f"service {service_id!r} not found")
        return found

    def service_ids(self) -> Set[str]:
        """The ids of every service (a live, read-only set)."""
        return self._view.service_ids()

    def service_exists(self, service_id: str) -> bool:
        """Whether a service of that id exists."""
        return service_id in self._view.service_ids()

    def service_row(self, service_id: str) -> Row | None:
        """A service's stored row (its last failure, its update time)."""
        return self._store.service(service_id)

    def service_versions(self, service_id: str) -> Sequence[Row]:
        """A service's stored versions, newest first."""
        return self._store.service_versions(service_id)

    def service_version(self, service_id: str, version: str) -> Row | None:
        """One stored version of a service (None: no such version)."""
        return self._store.service_version(service_id, version)

    def locks(self, service_id: str) -> list[str]:
        """The running deployments that hold a service."""
        return self._view.locks(service_id)

    def running_deployments(self) -> tuple[DeploymentInfo, ...]:
        """The running deployments, oldest first."""
        return self._view.deployments()

    def running_deployment(self, deployment_id: str) -> DeploymentInfo | None:
        """A running deployment (None: ended or unknown)."""
        return self._view.deployment(deployment_id)

    def deployment_rows(self, running_only: bool) -> Sequence[Row]:
        """Stored deployments, newest first: the running ones, or the newest 100 of any state."""
        return self._store.deployments("RUNNING" if running_only else None)

    def deployment_row(self, deployment_id: str) -> Row | None:
        """A stored deployment, running or ended (None: unknown)."""
        return self._store.deployment(deployment_id)

    # --- events and owners

    def events_since(self, after: int, limit: int = 1000) -> Sequence[Row]:
        """Stored events with ids above ``after``, oldest first, at most ``limit``."""
        return self._store.events_since(after, limit=limit)

    def last_event_id(self) -> int:
        """The newest event's id (0: none yet)."""
        return self._store.last_event_id()

    def sees_event(self, event: Mapping[str, Any]) -> bool:
        """Whether these reads show an event (all of them do; see ``PrivateQueries``)."""
        return True

    def owner_of(self, workload: str) -> str | None:
        """The owner of a job or service (None: there is none of that name)."""
        if workload.startswith("/"):
            rec = self._view.service(workload)
            return None if rec is None else rec.owner
        row = self._store.job(workload)
        return None if row is None else str(row["owner"])

    def owners_of_deployment(self, deployment_id: str) -> set[str]:
        """The owners of the services a deployment changes that still exist."""
        dep = self._view.deployment(deployment_id)
        if dep is not None:
            affected: Iterable[str] = dep.affected
        else:
            row = self._store.deployment(deployment_id)
            affected = () if row is None else (row["previous"] or {}).keys()
        return {o for sid in affected if (o := self.owner_of(sid)) is not None}


def _created_at(task: TaskInfo) -> float:
    return task.created_at
