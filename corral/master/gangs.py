"""Gang jobs in the master: a run of ``nodes × tasks_per_node`` ranks, each a task.

The ranks of a run are created together (``work.run_tasks``), each with its place in the gang
(``TaskLaunch.gang``); the scheduling core places them whole or not at all, each node on an
agent of its own (the gang's members in ``TaskRequest``, :func:`request_fields`). The hosts of
the nodes are known once placed, so they are filled into the launch when it is sent
(:func:`with_hosts`): every rank's hostfile lists them. A rank's remote shell (mpirun's) runs
its command in the gang's task on a host: :func:`rsh_target` finds that task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import astuple

from corral.master.records import AgentRecord, LiveTask, resources_of
from corral.scheduler.model import Resources
from corral.spec.jobs import JobSpec
from corral.spec.protocol import GangMember, TaskLaunch
from corral.spec.states import AgentState


def member_of(task: LiveTask) -> GangMember | None:
    """The task's place in its gang; None for a task of no gang."""
    return task.gang


def gang_key(task: LiveTask) -> str | None:
    """The name the scheduling core knows the task's gang by: one per attempt of the run, so
    that a retried gang is placed whole again (None: no gang)."""
    member = member_of(task)
    return None if member is None else f"{member.gang}.{task.attempt}"


def request_fields(task: LiveTask) -> tuple[str | None, int | None, int]:
    """What the scheduling core is told of a task's gang: its gang, its node and the gang's
    size (``TaskRequest.gang``, ``gang_node``, ``gang_size``; None, None, 0 for no gang)."""
    member = member_of(task)
    if member is None:
        return None, None, 0
    return gang_key(task), member.node_rank, member.size


def members(task: LiveTask, live: Iterable[LiveTask]) -> list[LiveTask]:
    """The live ranks of ``task``'s gang attempt (``live``: the live tasks of its job), by rank."""
    key = gang_key(task)
    found = [t for t in live if t.run == task.run and gang_key(t) == key]
    return sorted(found, key=lambda t: t.slot)


def hosts(ranks: Iterable[LiveTask], hostname_of: Callable[[str], str | None]) -> list[str]:
    """The host of each node of a placed gang, by node rank ("" for a node not placed)."""
    found: dict[int, str] = {}
    nodes = 0
    for rank in ranks:
        member = member_of(rank)
        if member is None:
            continue
        nodes = member.nodes
        host = hostname_of(rank.agent_id) if rank.agent_id else None
        if host is not None:
            found.setdefault(member.node_rank, host)
    return [found.get(node, "") for node in range(nodes)]


def with_hosts(
    task: LiveTask, live: Iterable[LiveTask], hostname_of: Callable[[str], str | None]
) -> TaskLaunch:
    """The launch to send for ``task``: for a gang's rank, with the host of every node."""
    launch = task.launch
    member = launch.gang
    if member is None:
        return launch
    placed = hosts(members(task, live), hostname_of)
    return launch.model_copy(update={"gang": member.model_copy(update={"hosts": placed})})


def rsh_target(
    asking: LiveTask, live: Iterable[LiveTask], host: str, hostname_of: Callable[[str], str | None]
) -> LiveTask | None:
    """The task a remote shell of ``asking`` (a rank of a gang) on ``host`` runs in: the
    lowest rank of the same gang attempt placed on an agent of that hostname."""
    for rank in members(asking, live):
        if rank.agent_id and hostname_of(rank.agent_id) == host:
            return rank
    return None


def gang_refusals(spec: JobSpec, agents: Iterable[AgentRecord]) -> list[tuple[str, str]]:
    """What of a gang job no set of known agents could ever hold, as (field, why): each node
    needs an agent of its own (not LOST, with the driver) with room for all its ranks."""
    if spec.nodes is None:
        return []
    per_node = spec.tasks_per_node or 1
    t = spec.task
    one = resources_of({"cpus": t.cpus, "mem": t.mem, "disk": t.disk, "gpus": t.gpus})
    need = Resources(*(per_node * amount for amount in astuple(one)))
    usable = [a for a in agents if a.state is not AgentState.LOST and t.driver in a.drivers]
    fit = sum(need.fits_in(a.total) for a in usable)
    if fit >= spec.nodes:
        return []
    node = f"{per_node} tasks of {t.cpus:g} cpus, {t.mem} MiB" if per_node > 1 else "its task"
    if fit == 0 and per_node > 1:
        return [("tasks_per_node", f"no agent has room for a node of {node} (driver {t.driver})")]
    why = (
        f"a gang of {spec.nodes} nodes needs {spec.nodes} agents, each with room for {node} "
        f"(driver {t.driver}): the cluster has {fit}"
    )
    return [("nodes", why)]
