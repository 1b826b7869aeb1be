"""Permit: the last word on tentative placements before they join the plan.

As the Kubernetes scheduler framework's Permit point: selection has found agents for the tasks
of a gang (an all-or-nothing group), tentatively; permit approves them all, or turns them all
down and the planner rolls them back, so the room they took goes to the tasks decided after.

The policy now is the minimal one an MPI job needs: every member placed, or none. Quorums
("at least 8 of 10") and waiting for members still in backoff come with the MPI work.
"""

from __future__ import annotations

from collections.abc import Iterable

from corral.scheduler.fairshare import within_owner
from corral.scheduler.model import FITS, Status, TaskRequest


def gangs_of(pending: Iterable[TaskRequest]) -> dict[str, list[TaskRequest]]:
    """The pending members of each gang, in the order they are tried (priority ↓, order, id)."""
    gangs: dict[str, list[TaskRequest]] = {}
    for task in pending:
        if task.gang is not None:
            gangs.setdefault(task.gang, []).append(task)
    for members in gangs.values():
        members.sort(key=within_owner)
    return gangs


def permit(gang: str, members: int, refusal: tuple[str, Status] | None) -> Status:
    """All-or-nothing: FITS when no member was refused, else why the whole gang waits.

    ``refusal`` is the first member that found no place and its status; the gang's status
    keeps that member's code (UNRESOLVABLE stays so: the gang can never be whole).
    """
    if refusal is None:
        return FITS
    task_id, status = refusal
    return Status(
        status.code,
        f"all-or-nothing group {gang} of {members} tasks: {task_id} does not fit: {status.reason}",
    )
