"""Permit: the last word on tentative placements before they join the plan.

As the Kubernetes scheduler framework's Permit point: selection has found agents for the tasks
of a gang (an all-or-nothing group), tentatively; permit approves them all, or turns them all
down and the planner rolls them back, so the room they took goes to the tasks decided after.

The policy is the one an MPI job needs: every member placed, or none; a gang with fewer members
pending than it has waits whole. A gang of **nodes** (members naming a ``gang_node``) needs
distinct agents, each with room for all the members of its node at once (an MPI job's nodes ×
tasks per node): :func:`place_nodes` picks them, and :func:`nodes_status` says, when it cannot,
how many agents would take a node now ("gang of 4 nodes: 3 fit"). Quorums ("at least 8 of
10") are not supported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from corral.scheduler.cohorts import Cohort, check_counts, check_spreads, spread_floors
from corral.scheduler.fairshare import within_owner
from corral.scheduler.feasibility import check_host_ports, check_resources
from corral.scheduler.model import FITS, Code, Resources, Status, TaskRequest
from corral.scheduler.scoring import fit_score
from corral.scheduler.state import NOTHING, AgentState, PlanState


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


def incomplete(gang: str, members: Sequence[TaskRequest]) -> Status | None:
    """Why a gang with members missing from the pending ones must wait, or None."""
    size = members[0].gang_size
    if size <= len(members):
        return None
    return Status(
        Code.UNSCHEDULABLE, f"gang {gang}: {len(members)} of its {size} tasks are pending"
    )


def nodes_of(members: Sequence[TaskRequest]) -> list[list[TaskRequest]]:
    """The members of a gang of nodes, grouped by node, nodes in order."""
    nodes: dict[int, list[TaskRequest]] = {}
    for member in members:
        nodes.setdefault(member.gang_node or 0, []).append(member)
    return [nodes[n] for n in sorted(nodes)]


def _need(node: Sequence[TaskRequest]) -> Resources:
    return sum((m.resources for m in node), NOTHING)


def _ports(node: Sequence[TaskRequest]) -> tuple[int, ...] | None:
    """The host ports a node's members need together; None if two of them need one port."""
    ports = [p for m in node for p in set(m.host_ports)]
    return tuple(ports) if len(set(ports)) == len(ports) else None


def _room(node: Sequence[TaskRequest], agent: AgentState) -> Status:
    """Room for all of a node's members on ``agent`` now: their host ports, then resources."""
    ports = _ports(node)
    if ports is None:
        return Status(Code.UNRESOLVABLE, "host port needed by two tasks of one node")
    if ports:
        status = check_host_ports(ports, agent.ports)
        if not status.fits:
            return status
    return check_resources(_need(node), agent.free)


def _fits(node: Sequence[TaskRequest], cohort: Cohort, agent: AgentState) -> Status:
    """The node's room on the agent, then the group rules (checked once per node)."""
    status = _room(node, agent)
    if status.fits:
        status = check_counts(cohort, agent)
    if status.fits and cohort.spreads:
        status = check_spreads(cohort, agent, spread_floors(cohort))
    return status


def place_nodes(members: Sequence[TaskRequest], cohort: Cohort, state: PlanState) -> bool:
    """Place a gang of nodes tentatively, node after node, each on the best agent no other node
    of the gang has (score, then lowest rank); False as soon as a node finds none."""
    need = sum((m.resources for m in members), NOTHING)
    if state.quota_refusal(cohort.task.owner, need, len(members)) is not None:
        return False
    strategy = cohort.task.strategy
    taken: set[int] = set()
    for node in nodes_of(members):
        need = _need(node)
        best, best_score = None, -1.0
        for rank in cohort.shape.candidates:
            agent = state.agents[rank]
            if rank in taken or not _fits(node, cohort, agent).fits:
                continue
            score = fit_score(strategy, agent.agent.total, agent.free, need)
            if score > best_score:  # strictly: on a tie the lower rank, seen first, stays
                best, best_score = rank, score
        if best is None:
            return False
        taken.add(best)
        for member in node:
            state.place(member, best)
    return True


def nodes_status(
    gang: str, members: Sequence[TaskRequest], cohort: Cohort, state: PlanState
) -> Status:
    """Why a gang of nodes is not placed: how many agents would take one of its nodes now, and
    why the others would not (each agent under its first refusal).

    UNRESOLVABLE when fewer agents than it has nodes could ever take one, whatever ends.
    """
    nodes = nodes_of(members)
    node = nodes[0]
    need = sum((m.resources for m in members), NOTHING)
    refusal = state.quota_refusal(cohort.task.owner, need, len(members))
    if refusal is not None:
        return Status(refusal.code, f"gang {gang}: {refusal.reason}")
    fit, ever = 0, 0
    refusals: dict[str, int] = {}
    for agent in state.agents:
        status = cohort.shape.static[agent.rank]
        if status.fits:
            status = _fits(node, cohort, agent)
        if status.fits:
            fit += 1
        else:
            refusals[status.reason] = refusals.get(status.reason, 0) + 1
        if status.fits or (
            status.code is Code.UNSCHEDULABLE and _need(node).fits_in(agent.agent.total)
        ):
            ever += 1
    size = f"{len(nodes)} nodes" + (f" × {len(node)} tasks" if len(node) > 1 else "")
    why = ", ".join(f"{n} {r}" for r, n in sorted(refusals.items(), key=lambda i: (-i[1], i[0])))
    code = Code.UNRESOLVABLE if state.agents and ever < len(nodes) else Code.UNSCHEDULABLE
    return Status(code, f"gang of {size}: {fit} fit" + (f" ({why})" if why else ""))
