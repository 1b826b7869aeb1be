"""``ClusterView``: the read-only face of the master's live records, for the scheduling pass
and the API's queries.

The contract:

- **Live, not copied**: the records a view answers (tasks, agents, services, deployments) are
  the master's own, so a read costs nothing and is always current. They are typed by read-only
  protocols (``TaskInfo``, ``AgentInfo``, ``ServiceInfo``, ``DeploymentInfo``) so that mypy
  refuses a write through the view; only
  ``ClusterState`` and the ops classes change them, inside a ``Change``.
- **Collections are copied or wrapped**: every listing is a fresh tuple (so it may be kept
  across an ``await`` while the master goes on), every mapping a ``MappingProxyType``.
- **Indexed, not scanned**: ``TaskIndex`` keeps the live tasks by job, by agent and by owner,
  updated by ``ClusterState`` where tasks enter and leave ``tasks`` and where one is placed; a
  listing costs what it returns, not the number of live tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from types import MappingProxyType
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from corral.scheduler.model import Resources
from corral.spec.jobs import JobSpec
from corral.spec.protocol import GpuDevice
from corral.spec.services import HealthCheckStatus, ServiceSpec
from corral.spec.states import AgentState, RunState, TaskState

if TYPE_CHECKING:
    from corral.master.fairshare import FairShare
    from corral.master.services import ServiceOps
    from corral.master.state import ClusterState


class TaskInfo(Protocol):
    """What a reader may see of a live task (``LiveTask`` without its setters)."""

    @property
    def id(self) -> str: ...
    @property
    def job(self) -> str: ...
    @property
    def run(self) -> int: ...
    @property
    def state(self) -> TaskState: ...
    @property
    def owner(self) -> str: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def resources(self) -> Resources: ...
    @property
    def host_ports(self) -> tuple[int, ...]: ...
    @property
    def devices(self) -> tuple[int, ...]: ...
    @property
    def kill_requested(self) -> bool: ...
    @property
    def healthy(self) -> bool | None: ...
    @property
    def health(self) -> str | None: ...
    @property
    def checks(self) -> list[HealthCheckStatus] | None: ...
    @property
    def ports(self) -> tuple[int, ...]: ...
    @property
    def created_at(self) -> float: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def waiting(self) -> str: ...
    @property
    def service(self) -> bool: ...


class ServiceInfo(Protocol):
    """What a reader may see of a service (``ServiceRecord`` without its setters)."""

    @property
    def id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def spec(self) -> ServiceSpec: ...
    @property
    def version(self) -> str: ...
    @property
    def config(self) -> int: ...
    @property
    def config_version(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def delay_until(self) -> float | None: ...


class DeploymentInfo(Protocol):
    """What a reader may see of a running deployment (``DeploymentRecord``, read-only)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def steps(self) -> Sequence[Sequence[Mapping[str, str]]]: ...
    @property
    def current_step(self) -> int: ...
    @property
    def created_at(self) -> float: ...
    @property
    def affected(self) -> Set[str]: ...


class AgentInfo(Protocol):
    """What a reader may see of an agent (``AgentRecord`` without its session)."""

    @property
    def id(self) -> str: ...
    @property
    def hostname(self) -> str: ...
    @property
    def total(self) -> Resources: ...
    @property
    def used(self) -> Resources: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...
    @property
    def drivers(self) -> frozenset[str]: ...
    @property
    def state(self) -> AgentState: ...
    @property
    def registered_at(self) -> float: ...
    @property
    def last_heartbeat(self) -> float | None: ...
    @property
    def cgroups(self) -> str: ...
    @property
    def volume_roots(self) -> tuple[str, ...]: ...
    @property
    def privileged(self) -> bool: ...
    @property
    def connected(self) -> bool: ...
    @property
    def gpus(self) -> tuple[GpuDevice, ...]: ...


class Filed(Protocol):
    """What ``TaskIndex`` files a task by."""

    @property
    def id(self) -> str: ...
    @property
    def job(self) -> str: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def owner(self) -> str: ...


T = TypeVar("T", bound=Filed)
_Key = tuple[str, str | None, str]  # where a task is filed: (job, agent id, owner)


class TaskIndex(Generic[T]):
    """Live tasks by job, by agent (placed ones only) and by owner, in the order they came.

    ``ClusterState`` calls ``add`` when a task enters its ``tasks``, ``remove`` when it leaves
    and ``moved`` when its agent changes; each is idempotent, so a task added twice (a reload)
    is filed once.
    """

    def __init__(self) -> None:
        # Dicts of id -> task: ordered sets with O(1) removal.
        self._by_job: dict[str, dict[str, T]] = {}
        self._by_agent: dict[str, dict[str, T]] = {}
        self._by_owner: dict[str, dict[str, T]] = {}
        self._filed: dict[str, _Key] = {}

    def add(self, task: T) -> None:
        """File a task that became live (or file it again where it is now)."""
        self.remove(task)
        key = (task.job, task.agent_id, task.owner)
        self._filed[task.id] = key
        self._by_job.setdefault(key[0], {})[task.id] = task
        if key[1] is not None:
            self._by_agent.setdefault(key[1], {})[task.id] = task
        self._by_owner.setdefault(key[2], {})[task.id] = task

    def remove(self, task: T) -> None:
        """Forget a task that is no longer live; a task not filed is ignored."""
        key = self._filed.pop(task.id, None)
        if key is None:
            return
        _discard(self._by_job, key[0], task.id)
        if key[1] is not None:
            _discard(self._by_agent, key[1], task.id)
        _discard(self._by_owner, key[2], task.id)

    def moved(self, task: T) -> None:
        """A filed task's agent changed (it was placed): file it under its new agent, and
        leave it where it was by job and owner."""
        key = self._filed.get(task.id)
        if key is None or key[1] == task.agent_id:
            return
        if key[1] is not None:
            _discard(self._by_agent, key[1], task.id)
        if task.agent_id is not None:
            self._by_agent.setdefault(task.agent_id, {})[task.id] = task
        self._filed[task.id] = (key[0], task.agent_id, key[2])

    def of_job(self, job: str) -> tuple[T, ...]:
        """The live tasks of a job or service."""
        return tuple(self._by_job.get(job, {}).values())

    def on_agent(self, agent_id: str) -> tuple[T, ...]:
        """The live tasks placed on an agent."""
        return tuple(self._by_agent.get(agent_id, {}).values())

    def of_owner(self, owner: str) -> tuple[T, ...]:
        """The live tasks of an owner."""
        return tuple(self._by_owner.get(owner, {}).values())

    def jobs(self) -> tuple[str, ...]:
        """The jobs and services that have live tasks."""
        return tuple(self._by_job)

    def agents(self) -> tuple[str, ...]:
        """The agents that have live tasks placed on them."""
        return tuple(self._by_agent)

    def owners(self) -> tuple[str, ...]:
        """The owners that have live tasks."""
        return tuple(self._by_owner)

    def __len__(self) -> int:
        return len(self._filed)


def _discard(index: dict[str, dict[str, T]], key: str, task_id: str) -> None:
    bucket = index.get(key)
    if bucket is None:
        return
    bucket.pop(task_id, None)
    if not bucket:
        del index[key]  # an empty bucket would keep a finished job listed


class ClusterView:
    """Read-only access to the live tasks, agents, runs, job specs, services and deployments
    (see the module's docstring for what is live and what is copied)."""

    def __init__(
        self, state: ClusterState, services: ServiceOps, fair_share: FairShare | None = None
    ) -> None:
        self._state = state
        self._index = state.index
        self._services = services
        self.fair_share = fair_share  # weights, quotas and decayed usage (read, never changed)
        self.runs: Mapping[tuple[str, int], RunState] = MappingProxyType(state.runs)
        self.specs: Mapping[str, JobSpec] = MappingProxyType(state.specs)

    def now(self) -> float:
        """The master's clock, wall time in seconds."""
        return self._state.clock.now()

    # --- tasks

    def task(self, task_id: str) -> TaskInfo | None:
        """A live task (None: finished or unknown)."""
        return self._state.tasks.get(task_id)

    def tasks(self) -> tuple[TaskInfo, ...]:
        """Every live task; a copy as long as the live set, for the rare read of all."""
        return tuple(self._state.tasks.values())

    def tasks_of_job(self, job: str) -> tuple[TaskInfo, ...]:
        """The live tasks of a job or service, in the order they became live."""
        return self._index.of_job(job)

    def tasks_on_agent(self, agent_id: str) -> tuple[TaskInfo, ...]:
        """The live tasks placed on an agent."""
        return self._index.on_agent(agent_id)

    def tasks_of_owner(self, owner: str) -> tuple[TaskInfo, ...]:
        """The live tasks of an owner."""
        return self._index.of_owner(owner)

    def jobs_with_tasks(self) -> tuple[str, ...]:
        """The jobs and services that have live tasks."""
        return self._index.jobs()

    def task_counts(self, owner: str | None = None) -> dict[TaskState, int]:
        """Every stored task (finished ones too) per state, of ``owner`` or of everyone; kept
        as tasks change, so this costs the owners, not the tasks."""
        counts = dict.fromkeys(TaskState, 0)
        for (who, state), n in self._state.task_counts.items():
            if owner is None or who == owner:
                counts[TaskState(state)] += n
        return counts

    # --- agents, jobs

    def agent(self, agent_id: str | None) -> AgentInfo | None:
        """An agent the master knows (None for None: a task never placed)."""
        return None if agent_id is None else self._state.agents.get(agent_id)

    def agents(self) -> tuple[AgentInfo, ...]:
        """Every agent the master knows, in the order they were first seen."""
        return tuple(self._state.agents.values())

    def children(self, name: str) -> list[str]:
        """Jobs that name ``name`` among their parents, by name."""
        return sorted(n for n, s in self._state.specs.items() if name in s.parents)

    # --- services, deployments

    def service(self, service_id: str) -> ServiceInfo | None:
        """A service's live record (None: no such service)."""
        return self._services.services.get(service_id)

    def services(self) -> tuple[ServiceInfo, ...]:
        """Every service, by id."""
        return tuple(rec for _, rec in sorted(self._services.services.items()))

    def service_ids(self) -> Set[str]:
        """The ids of the services (a live, read-only set)."""
        return self._services.services.keys()

    def deployment(self, deployment_id: str) -> DeploymentInfo | None:
        """A running deployment (None: ended or unknown)."""
        return self._services.deployments.get(deployment_id)

    def deployments(self) -> tuple[DeploymentInfo, ...]:
        """The running deployments, oldest first."""
        return tuple(sorted(self._services.deployments.values(), key=lambda d: d.created_at))

    def locks(self, service_id: str) -> list[str]:
        """The running deployments that hold a service, by id."""
        return self._services.locks(service_id)
