"""The one typed task row: a task as it is stored when it is created.

Batch runs, retries and service instances all build a ``TaskRow``; the ``tasks`` row, the
launch message and what the scheduler is asked to place are derived from it, here, so they cannot
drift apart (a port that a task needs exactly, say, is read from its launch in one place).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from corral.spec import limits
from corral.spec.protocol import TaskLaunch


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
    launch: TaskLaunch
    strategy: str = "binpack"
    rules: tuple[Rule, ...] = ()
    created_at: float = 0.0
    not_before: float | None = None  # not placed before (a retry's or a restart's backoff)
    # The GPU indices it holds on its agent, given when it was placed (stored with its placement,
    # so a restarted master knows them); () until then, and for a task asking for no GPU.
    devices: tuple[int, ...] = ()

    def placed(self, devices: tuple[int, ...]) -> TaskRow:
        """This task as placed with the GPU indices ``devices``."""
        return replace(self, devices=devices)

    @property
    def launch_message(self) -> TaskLaunch:
        """What its agent is sent: the launch, with the GPU indices it was given."""
        if not self.devices:
            return self.launch
        return self.launch.model_copy(update={"gpu_devices": list(self.devices)})

    @property
    def host_ports(self) -> tuple[int, ...]:
        """The host ports the task needs exactly: read from its launch, so a batch task and a
        service instance asking for one are placed alike."""
        return self.launch.fixed_host_ports()

    def values(self) -> dict[str, Any]:
        """The ``tasks`` row to insert."""
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
            "launch": self.launch.model_dump(mode="json"),
            "placement": {
                "strategy": self.strategy,
                "constraints": [
                    {"field": r.field, "operator": r.operator, "value": r.value} for r in self.rules
                ],
            },
            "kill_requested": False,
            "created_at": self.created_at,
            "not_before": self.not_before,
            "devices": list(self.devices) or None,
        }

    def next_attempt(self, tid: str, now: float, not_before: float) -> TaskRow:
        """The next attempt of this task under the id ``tid``: the same launch, renamed."""
        env = {**self.launch.env, "CORRAL_TASK_ID": tid, "MESOS_TASK_ID": tid}
        launch = self.launch.model_copy(update={"task_id": tid, "env": env})
        return replace(
            self,
            id=tid,
            attempt=self.attempt + 1,
            launch=launch,
            created_at=now,
            not_before=not_before,
            devices=(),  # placed anew, wherever it goes
        )

    @classmethod
    def stored(cls, row: Mapping[str, Any]) -> TaskRow:
        """The task row of a ``tasks`` row read back from the store (its launch checked as it
        was admitted, see ``JobSpec.stored``)."""
        placement = row["placement"] or {}
        with limits.reading_stored():
            launch = TaskLaunch.model_validate(row["launch"])
        return cls(
            id=row["id"],
            job=row["job"],
            run=row["run"],
            slot=row["slot"],
            idx=row["idx"],
            attempt=row["attempt"],
            owner=row["owner"],
            priority=row["priority"],
            launch=launch,
            strategy=placement.get("strategy", "binpack"),
            rules=tuple(
                Rule(c["field"], c["operator"], c.get("value"))
                for c in placement.get("constraints", ())
            ),
            created_at=row.get("created_at") or 0.0,
            not_before=row.get("not_before"),
            devices=tuple(row.get("devices") or ()),
        )
