"""The one typed task row: a task as it is stored when it is created.

Batch runs, retries and service instances all build a ``TaskRow``; the ``tasks`` row, the
launch message and what the scheduler is asked to place are derived from it, here, so they cannot
drift apart (a port that a task needs exactly, say, is read from its launch in one place).

A row keeps its launch packed (``PackedLaunch``): the JSON it is stored as, and the few facts
placing it needs, read once. A master holds a row for every task not finished, 100,000 waiting
ones of an array among them; a launch message is a pydantic model of a dozen nested parts, so
it is made again only when it is sent.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from corral.scheduler.model import Resources
from corral.spec import limits
from corral.spec.docker import PRIVILEGED_PARAMETERS
from corral.spec.protocol import GangMember, TaskLaunch


@dataclass(frozen=True, slots=True)
class LaunchFacts:
    """What placing a task needs of its launch (tasks of one array share one)."""

    resources: Resources  # in the core's units
    driver: str
    host_paths: tuple[str, ...]  # the host paths of its volumes, sorted
    privileged: bool  # a privileged container, or one with a privileged docker parameter
    host_ports: tuple[int, ...]  # the host ports it needs exactly
    health_checked: bool  # it has health checks


@functools.lru_cache(maxsize=4096)
def _shared(facts: LaunchFacts) -> LaunchFacts:
    return facts


def facts_of(launch: TaskLaunch) -> LaunchFacts:
    """The facts of a launch; an equal one made before is answered instead, so an array's
    tasks hold one."""
    docker = launch.docker
    return _shared(
        LaunchFacts(
            resources=Resources(round(launch.cpus * 1000), launch.mem, launch.disk, launch.gpus),
            driver=launch.driver,
            host_paths=()
            if docker is None
            else tuple(sorted({v.host_path for v in docker.volumes})),
            privileged=docker is not None
            and (
                docker.privileged or any(p.key in PRIVILEGED_PARAMETERS for p in docker.parameters)
            ),
            host_ports=launch.fixed_host_ports(),
            health_checked=bool(launch.health_checks),
        )
    )


@dataclass(frozen=True, slots=True)
class PackedLaunch:
    """A task's launch as the JSON it is stored as, with its facts and its gang membership."""

    json: str
    facts: LaunchFacts
    gang: GangMember | None = None  # a rank's place in its gang

    @classmethod
    def of(cls, launch: TaskLaunch, facts: LaunchFacts | None = None) -> PackedLaunch:
        """Pack a launch (``facts``: its facts, known already)."""
        return cls(launch.model_dump_json(), facts or facts_of(launch), launch.gang)

    def unpack(self) -> TaskLaunch:
        """The launch again (checked as it was admitted, see ``JobSpec.stored``)."""
        with limits.reading_stored():
            return TaskLaunch.model_validate_json(self.json)


@dataclass(frozen=True, slots=True)
class Rule:
    """A placement constraint as stored: Marathon's ``[field, operator, value]``."""

    field: str
    operator: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task when it is created: PENDING, not placed, its first or next attempt."""

    id: str
    job: str  # the job's name, or the service's id ("/web")
    run: int  # the run of a job; the configuration number of a service
    slot: int
    idx: int  # the value of {index}
    attempt: int
    owner: str
    priority: int
    launch: PackedLaunch
    strategy: str = "binpack"
    rules: tuple[Rule, ...] = ()
    created_at: float = 0.0
    not_before: float | None = None  # not placed before (a retry's or a restart's backoff)
    # The GPU indices it holds on its agent, given when it was placed (stored with its placement,
    # so a restarted master knows them); () until then, and for a task asking for no GPU.
    devices: tuple[int, ...] = ()
    # Earlier attempts of its slot that were preempted (then requeued): they use up none of
    # the job's retries.
    requeues: int = 0

    def placed(self, devices: tuple[int, ...]) -> TaskRow:
        """This task as placed with the GPU indices ``devices``."""
        return replace(self, devices=devices)

    @property
    def launch_message(self) -> TaskLaunch:
        """What its agent is sent: the launch, with the GPU indices it was given."""
        launch = self.launch.unpack()
        if not self.devices:
            return launch
        return launch.model_copy(update={"gpu_devices": list(self.devices)})

    @property
    def host_ports(self) -> tuple[int, ...]:
        """The host ports the task needs exactly: read from its launch, so a batch task and a
        service instance asking for one are placed alike."""
        return self.launch.facts.host_ports

    def values(self) -> dict[str, Any]:
        """The ``tasks`` row to insert; its JSON columns (``launch``, ``placement``, ``ports``,
        ``devices``) as JSON text, as ``Tx.insert_tasks`` writes them."""
        return {
            "id": self.id,
            "job": self.job,
            "run": self.run,
            "slot": self.slot,
            "idx": self.idx,
            "attempt": self.attempt,
            "latest": True,
            "state": "PENDING",
            "reason": "",
            "owner": self.owner,
            "priority": self.priority,
            "launch": self.launch.json,
            "placement": _placement_json(self.strategy, self.rules),
            "kill_requested": False,
            "created_at": self.created_at,
            "not_before": self.not_before,
            "ports": None,
            "devices": json.dumps(list(self.devices)) if self.devices else None,
            "requeues": self.requeues,
        }

    def next_attempt(
        self, tid: str, now: float, not_before: float, requeue: bool = False
    ) -> TaskRow:
        """The next attempt of this task under the id ``tid``: the same launch, renamed
        (``requeue``: this one was preempted, which counts as no failure)."""
        launch = self.launch.unpack()
        env = {**launch.env, "CORRAL_TASK_ID": tid, "MESOS_TASK_ID": tid}
        launch = launch.model_copy(update={"task_id": tid, "env": env})
        return replace(
            self,
            id=tid,
            attempt=self.attempt + 1,
            launch=PackedLaunch.of(launch),
            created_at=now,
            not_before=not_before,
            devices=(),  # placed anew, wherever it goes
            requeues=self.requeues + 1 if requeue else self.requeues,
        )

    @classmethod
    def stored(cls, row: Mapping[str, Any]) -> TaskRow:
        """The task row of a ``tasks`` row read back from the store (its launch checked as it
        was admitted, see ``JobSpec.stored``)."""
        stored, placement = row["launch"], row["placement"] or {}
        with limits.reading_stored():
            if isinstance(stored, str):  # the JSON text itself (``Store.active_tasks``)
                launch = TaskLaunch.model_validate_json(stored)
            else:
                launch = TaskLaunch.model_validate(stored)
        strategy, rules = (
            _placement_of(placement) if isinstance(placement, str) else _placement(placement)
        )
        return cls(
            id=row["id"],
            job=row["job"],
            run=row["run"],
            slot=row["slot"],
            idx=row["idx"],
            attempt=row["attempt"],
            owner=row["owner"],
            priority=row["priority"],
            launch=PackedLaunch.of(launch),
            strategy=strategy,
            rules=rules,
            created_at=row.get("created_at") or 0.0,
            not_before=row.get("not_before"),
            devices=tuple(row.get("devices") or ()),
            requeues=row.get("requeues") or 0,
        )


def _placement(placement: Mapping[str, Any]) -> tuple[str, tuple[Rule, ...]]:
    """The strategy and rules of a ``placement`` column."""
    rules = tuple(
        Rule(c["field"], c["operator"], c.get("value")) for c in placement.get("constraints", ())
    )
    return placement.get("strategy", "binpack"), rules


@functools.lru_cache(maxsize=1024)
def _placement_of(text: str) -> tuple[str, tuple[Rule, ...]]:
    """``_placement`` of a ``placement`` column's JSON text (an array's tasks share one)."""
    return _placement(json.loads(text) or {})


@functools.lru_cache(maxsize=1024)
def _placement_json(strategy: str, rules: tuple[Rule, ...]) -> str:
    """The ``placement`` column of tasks placed by ``strategy`` and ``rules`` (an array's tasks
    share one: made once)."""
    constraints = [{"field": r.field, "operator": r.operator, "value": r.value} for r in rules]
    return json.dumps({"strategy": strategy, "constraints": constraints})
