"""The applier: a plan of the scheduling core made durable in one transaction.

Placements become STAGING (write-ahead: stored before any launch leaves, so a crash in between
leaves STAGING tasks that reconciliation re-sends or marks LOST); stops and preemptions mark
their tasks to be killed, each with its reason as an event. Nothing is sent from here: the
``Outbox`` it answers is what to tell agents once the transaction has committed. The store
fences every write transaction by the master's epoch, so a replaced master applies nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from corral.master.records import AgentRecord, LiveTask
from corral.master.state import ClusterState
from corral.scheduler.model import Plan, Status
from corral.store.store import Tx


@dataclass(frozen=True, slots=True)
class Kill:
    """Tell ``agent`` to stop ``task``, for ``reason`` (a preemption: to make room for ``by``)."""

    agent: AgentRecord
    task: LiveTask
    reason: str
    by: str | None = None


@dataclass(frozen=True, slots=True)
class Outbox:
    """What to tell agents after the plan's transaction committed, in this order."""

    launches: tuple[tuple[LiveTask, AgentRecord], ...] = ()
    kills: tuple[Kill, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.launches or self.kills)


class Applier:
    """Writes plans; the scheduling loop's only way to change state."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state

    def apply(
        self, plan: Plan, placed: Sequence[tuple[LiveTask, AgentRecord]], now: float
    ) -> Outbox:
        """Store ``placed`` (the plan's placements still valid now), its stops and its
        preemptions in one transaction; answer what to send once it committed."""
        for task_id, status in plan.waiting.items():
            if (task := self.state.tasks.get(task_id)) is not None:
                task.waiting = status.reason
        ending: list[tuple[str, str, Status, str | None]] = [
            (s.task_id, s.agent_id, s.status, None) for s in plan.stops
        ]
        ending += [(p.task_id, p.agent_id, p.status, p.by) for p in plan.preemptions]
        kills = self._still_running(ending)
        if not placed and not kills:
            return Outbox()
        devices = {p.task_id: p.devices for p in plan.placements}  # the GPU indices given
        with self.state.change() as ch:
            if placed:
                self._place(ch.tx, placed, devices, now)
            for kill in kills:
                ch.tx.update_task(kill.task.id, kill_requested=True)
                ch.tx.add_event(
                    time=now,
                    type="task_preempted" if kill.by else "task_stopped",
                    job=kill.task.job,
                    run=kill.task.run,
                    task_id=kill.task.id,
                    agent_id=kill.agent.id,
                    reason=kill.reason,
                    data={"by": kill.by} if kill.by else {},
                )

            def remember() -> None:
                for t, a in placed:
                    self.state.occupy(t, a, devices.get(t.id, ()))
                for kill in kills:
                    kill.task.kill_requested = True

            ch.after(remember)
        return Outbox(tuple(placed), tuple(kills))

    def _still_running(self, ending: list[tuple[str, str, Status, str | None]]) -> list[Kill]:
        """The stops and preemptions whose task still runs where the plan saw it."""
        kills = []
        for task_id, agent_id, status, by in ending:
            task = self.state.tasks.get(task_id)
            agent = self.state.agents.get(agent_id)
            if task is None or agent is None or task.agent_id != agent_id:
                continue
            if task.kill_requested or not task.state.active:
                continue
            kills.append(Kill(agent, task, status.reason, by))
        return kills

    @staticmethod
    def _place(
        tx: Tx,
        placed: Sequence[tuple[LiveTask, AgentRecord]],
        devices: dict[str, tuple[int, ...]],
        now: float,
    ) -> None:
        tx.place_tasks(
            [
                {"task_id": t.id, "agent_id": a.id, "devices": devices.get(t.id, ())}
                for t, a in placed
            ]
        )
        tx.add_events(
            [
                {
                    "time": now,
                    "type": "task_state",
                    "job": t.job,
                    "run": t.run,
                    "task_id": t.id,
                    "agent_id": a.id,
                    "state": "STAGING",
                    "reason": f"placed on {a.hostname}" + _gpus_given(devices.get(t.id, ())),
                }
                for t, a in placed
            ]
        )


def _gpus_given(devices: tuple[int, ...]) -> str:
    """`` with GPU 0,1`` for the reason of a placement given GPUs; "" for one given none."""
    return f" with GPU {','.join(map(str, devices))}" if devices else ""
