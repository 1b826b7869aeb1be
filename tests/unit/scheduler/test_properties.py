"""Properties of every plan, on small generated clusters: hypothesis looks for a counterexample.

For any snapshot and pending work: no agent is over-committed; LIKE, UNLIKE, CLUSTER, UNIQUE and
MAX_PER hold over the final placement set; no agent gives one host port to two tasks, nor one it
had in use; each placement gets the GPU indices it asked for, of its agent, none given twice nor
already held; quotas hold; no task is placed twice; each pending task is placed or has a reason; a
gang is placed whole or not at all, a gang of nodes with each node on an agent of its own;
preemptions name only preemptible placed tasks of another owner and of no higher priority, each
once, and over-commit no agent once their victims stopped (all via ``check_plan``); they make
room only for owners below their fair share, out of owners over theirs. ``plan``
decides exactly as the exhaustive reference (which also covers GROUP_BY), for the same reasons,
and preempts the same tasks. And the plan depends on nothing but the input's content: not on
repetition, the order of pending tasks or of agents.
"""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.scheduler import (
    AgentSnapshot,
    Code,
    Constraint,
    Operator,
    PlacedTask,
    Quota,
    Resources,
    Snapshot,
    Strategy,
    TaskRequest,
    plan,
    plan_exhaustive,
)
from corral.scheduler.fairshare import dominant_share
from corral.scheduler.harness import check_plan, first_refusals

RACKS = ("a", "b", "c")
HOSTS = ("h1", "h2", "h3", "h4")
OWNERS = ("alice", "bob", "carol")
FIELDS = ("hostname", "rack", "agent")
SETTINGS = settings(max_examples=200, deadline=None)

Work = tuple[Snapshot, list[TaskRequest]]


# Each draw picks a whole combination from a list built once: hypothesis spends far more time
# per draw than the planner spends per plan, so few draws keep 200 examples quick.
SIZES = [Resources(c, m) for c in (0, 250, 500, 1000, 2000) for m in (0, 128, 1024)]
SIZES += [Resources(c, 128, 0, g) for c in (250, 1000) for g in (1, 2)]
AGENT = st.sampled_from(
    list(
        product(
            range(0, 4001, 500),  # millicpus
            (0, 512, 1024, 4096),  # mem
            (*RACKS, None),
            HOSTS,
            (("process",), ("docker",), ("process", "docker")),
            (0.0, 0.25, 0.5, 1.0),  # share of the agent already used
        )
    )
)
# Few distinct ports, so that tasks contend for them and agents already hold them.
PORT_SETS = ((), (), (80,), (8080,), (80, 8080), (8080, 8080))  # the last: tcp and udp
# GPUs: how many, their indices if named, and those a running task already holds.
GPU_SETS = ((0, (), ()), (0, (), ()), (1, (), ()), (1, (), (0,)), (2, (), ()), (2, (1, 3), (3,)))
GPUS_SCHEDULABLE_PORTS = st.sampled_from(
    [(g, s > 0, p) for g in GPU_SETS for s in range(10) for p in PORT_SETS]
)
VALUES: dict[Operator, tuple[str | None, ...]] = {
    Operator.LIKE: ("a", "a|b", "[bc]", ".*", "h[12]", "agent-1"),
    Operator.UNLIKE: ("a", "a|b", "[bc]", ".*", "h[12]", "agent-1"),
    Operator.CLUSTER: (None, "a", "b", "h1"),
    Operator.MAX_PER: ("1", "2", "3"),
    Operator.GROUP_BY: (None, "2", "3"),
    Operator.UNIQUE: (None,),
}
CONSTRAINT = st.sampled_from(
    [Constraint(f, op, v) for f in FIELDS for op, values in VALUES.items() for v in values]
)
RULES = st.lists(CONSTRAINT, max_size=2).map(tuple)
KIND = st.sampled_from(list(product(Strategy, OWNERS, ("process", "process", "docker"), PORT_SETS)))
MEMBER = st.sampled_from(list(product(range(3), range(4), (None, None, None, *SIZES))))
PLACED = st.sampled_from(
    list(product(range(4), range(7), OWNERS, (0, 500, 1000, 2000), (128, 1024), range(3)))
)
CAPACITY = st.sampled_from((1000, 2000, 4000))
RUNNING = st.sampled_from(list(product(range(4), range(4), OWNERS, (500, 1000, 2000), range(3))))
UNIQUE_HOST = (Constraint("hostname", Operator.UNIQUE),)
URGENT = st.sampled_from(
    list(
        product(
            range(4, 7),  # groups of their own, and g4..g6: some alike the placed ones' groups
            (500, 1000, 2000, 4000),
            OWNERS,
            range(1, 5),  # priority
            ((), (), (80,)),
            (False, False, True),  # in a gang
        )
    )
)
CAP = st.none() | st.integers(0, 4096)
PAST = st.builds(Resources, st.integers(0, 8000), st.integers(0, 8192))
QUOTA = st.builds(Quota, CAP, CAP, st.none() | st.integers(0, 2), st.none() | st.integers(0, 5))


@st.composite
def agents(draw: st.DrawFn, index: int) -> AgentSnapshot:
    cpus, mem, rack, host, drivers, busy = draw(AGENT)
    (gpus, devices, held), schedulable, ports_used = draw(GPUS_SCHEDULABLE_PORTS)
    return AgentSnapshot(
        id=f"agent-{index}",
        hostname=host,
        total=Resources(cpus, mem, 0, gpus),
        used=Resources(int(cpus * busy), int(mem * busy), 0, len(held)),
        attributes={} if rack is None else {"rack": rack},
        drivers=frozenset(drivers),
        schedulable=schedulable,
        ports_used=frozenset(ports_used),
        devices=devices,
        devices_used=frozenset(held),
    )


@st.composite
def groups(draw: st.DrawFn, name: str, start: int) -> list[TaskRequest]:
    """A job or service: tasks alike but for id, priority, order and (sometimes) size."""
    rules, size = draw(RULES), draw(st.sampled_from(SIZES))
    strategy, owner, driver, host_ports = draw(KIND)
    kind = draw(st.integers(0, 3))  # a quarter all or nothing, a quarter a gang of nodes
    gang = name if kind < 2 else None
    per_node = draw(st.integers(1, 3)) if kind == 1 else None
    members = draw(st.lists(MEMBER, min_size=1, max_size=6))
    return [
        TaskRequest(
            id=f"{name}-{i}",
            group=name,
            resources=size if other is None else other,
            driver=driver,
            constraints=rules,
            strategy=strategy,
            owner=owner,
            priority=priority,
            order=start + order,
            host_ports=host_ports,
            gang=gang,
            gang_node=None if per_node is None else i // per_node,
            gang_size=len(members) if per_node else 0,
        )
        for i, (priority, order, other) in enumerate(members)
    ]


@st.composite
def work(draw: st.DrawFn) -> Work:
    cluster = tuple(draw(agents(i)) for i in range(draw(st.integers(0, 6))))
    pending: list[TaskRequest] = []
    for g in range(draw(st.integers(1, 4))):
        pending += draw(groups(f"g{g}", start=len(pending)))
    placed = [
        # agent-6 is never in the snapshot: its task counts for fair share and quota only.
        PlacedTask(f"old-{i}", f"g{group}", f"agent-{agent}", owner, Resources(cpus, mem), priority)
        for i, (group, agent, owner, cpus, mem, priority) in enumerate(
            draw(st.lists(PLACED, max_size=6))
        )
    ]
    cluster, placed = _hold(cluster, placed)
    quotas = draw(st.dictionaries(st.sampled_from(OWNERS), QUOTA, max_size=2))
    weights = draw(
        st.dictionaries(st.sampled_from(OWNERS), st.sampled_from((0.5, 1.0, 3.0)), max_size=2)
    )
    # Users in groups (carol in none), a group's quota on its users together, and a decayed
    # past: the caps must hold whatever the order fair share gives.
    owner_groups = {"alice": "physics", "bob": draw(st.sampled_from(("physics", "chemistry")))}
    group_quotas = draw(
        st.dictionaries(st.sampled_from(("physics", "chemistry")), QUOTA, max_size=2)
    )
    past = draw(st.dictionaries(st.sampled_from(OWNERS), PAST, max_size=3))
    snapshot = Snapshot(
        cluster,
        tuple(placed),
        weights=weights,
        quotas=quotas,
        group_quotas=group_quotas,
        owner_groups=owner_groups,
        past=past,
    )
    return replace(snapshot, preemption=draw(st.booleans())), pending


@st.composite
def contended(draw: st.DrawFn) -> Work:
    """Agents full of placed work of mixed priorities, and pending work that outranks some of
    it: the preempt stage's ground (the mixed clusters above rarely are)."""
    cluster = tuple(
        AgentSnapshot(f"agent-{i}", f"h{i}", Resources(draw(CAPACITY), 4096), Resources())
        for i in range(draw(st.integers(1, 3)))
    )
    placed = [
        PlacedTask(f"old-{i}", f"g{group}", f"agent-{agent}", owner, Resources(cpus, 128), priority)
        for i, (group, agent, owner, cpus, priority) in enumerate(
            draw(st.lists(RUNNING, max_size=12))
        )
    ]
    cluster, placed = _hold(cluster, placed)
    pending = [
        TaskRequest(
            f"new-{i}",
            f"g{group}",
            Resources(cpus, 128),
            # One group, one set of rules, as in a job or service: g5 wants a host per task.
            constraints=UNIQUE_HOST if group == 5 else (),
            owner=owner,
            priority=priority,
            order=i,
            host_ports=ports,
            gang=f"g{group}" if gang else None,
        )
        for i, (group, cpus, owner, priority, ports, gang) in enumerate(
            draw(st.lists(URGENT, min_size=1, max_size=6))
        )
    ]
    quotas = draw(st.dictionaries(st.sampled_from(OWNERS), QUOTA, max_size=1))
    return Snapshot(cluster, tuple(placed), quotas=quotas, preemption=True), pending


def _hold(
    cluster: tuple[AgentSnapshot, ...], placed: list[PlacedTask]
) -> tuple[tuple[AgentSnapshot, ...], list[PlacedTask]]:
    """As the master sees it: a placed task's resources are part of its agent's ``used``.

    A task that would not fit on its agent is moved to the missing agent-6.
    """
    agents = {a.id: a for a in cluster}
    for i, task in enumerate(placed):
        agent = agents.get(task.agent_id)
        if agent is None:
            continue
        if (agent.used + task.resources).fits_in(agent.total):
            agents[agent.id] = replace(agent, used=agent.used + task.resources)
        else:
            placed[i] = replace(task, agent_id="agent-6")
    return tuple(agents[a.id] for a in cluster), placed


GPU_AGENT = st.sampled_from(
    [(g, held) for g in range(1, 5) for held in ((), (0,), (g - 1,), tuple(range(g)))]
)
GPU_TASK = st.sampled_from(list(product(range(3), range(3), (0, 1, 1, 2))))  # group, prio, gpus


@st.composite
def gpu_contended(draw: st.DrawFn) -> Work:
    """Few GPUs, partly held, and more GPU tasks than they take: where indices are scarce."""
    cluster = []
    for i in range(draw(st.integers(1, 3))):
        gpus, held = draw(GPU_AGENT)
        cluster.append(
            AgentSnapshot(
                f"agent-{i}",
                f"h{i}",
                Resources(8000, 8192, 0, gpus),
                Resources(0, 0, 0, len(held)),
                devices=tuple(range(10 * i, 10 * i + gpus)) if i == 2 else (),  # named ones
                devices_used=frozenset(held if i != 2 else (10 * i + h for h in held)),
            )
        )
    pending = [
        TaskRequest(
            f"gpu-{i}",
            f"g{group}",
            Resources(500, 128, 0, gpus),
            priority=priority,
            order=i,
            gang=f"g{group}" if group == 2 else None,
        )
        for i, (group, priority, gpus) in enumerate(
            draw(st.lists(GPU_TASK, min_size=1, max_size=8))
        )
    ]
    return Snapshot(tuple(cluster), preemption=draw(st.booleans())), pending


# Any kind of input: a mixed cluster, one contended by work of several priorities, or one short
# of GPUs.
CASES = st.one_of(work(), contended(), gpu_contended())


@SETTINGS
@given(CASES)
def test_every_plan_keeps_the_invariants(case: Work) -> None:
    snapshot, pending = case
    assert check_plan(snapshot, pending, plan(snapshot, pending)) == []


@SETTINGS
@given(CASES)
def test_no_agent_gets_a_fixed_host_port_twice_nor_one_already_in_use(case: Work) -> None:
    snapshot, pending = case
    agents = {a.id: a for a in snapshot.agents}
    tasks = {t.id: t for t in pending}
    held = {a.id: set(a.ports_used) for a in snapshot.agents}
    for p in plan(snapshot, pending).placements:
        wanted = set(tasks[p.task_id].host_ports)
        assert wanted.isdisjoint(held[p.agent_id]), (p, agents[p.agent_id].ports_used)
        held[p.agent_id] |= wanted


@SETTINGS
@given(CASES)
def test_no_gpu_index_is_given_twice_nor_one_already_held(case: Work) -> None:
    snapshot, pending = case
    agents = {a.id: a for a in snapshot.agents}
    tasks = {t.id: t for t in pending}
    held = {a.id: set(a.devices_used) for a in snapshot.agents}
    for p in plan(snapshot, pending).placements:
        assert len(p.devices) == tasks[p.task_id].resources.gpus, p
        assert set(p.devices) <= set(agents[p.agent_id].gpu_indices), p
        assert held[p.agent_id].isdisjoint(p.devices), (p, held[p.agent_id])
        held[p.agent_id] |= set(p.devices)


@SETTINGS
@given(CASES)
def test_plan_decides_exactly_as_the_exhaustive_reference(case: Work) -> None:
    snapshot, pending = case
    fast, slow = plan(snapshot, pending), plan_exhaustive(snapshot, pending)
    assert fast.placements == slow.placements
    assert fast.waiting.keys() == slow.waiting.keys()
    assert first_refusals(pending, fast) == first_refusals(pending, slow)
    assert fast.preemptions == slow.preemptions


@SETTINGS
@given(CASES, st.randoms(use_true_random=False))
def test_the_same_input_in_any_order_gives_the_same_plan(case: Work, rng: random.Random) -> None:
    snapshot, pending = case
    first = plan(snapshot, pending)
    assert plan(snapshot, pending) == first
    shuffled_pending = list(pending)
    rng.shuffle(shuffled_pending)
    shuffled_agents = list(snapshot.agents)
    rng.shuffle(shuffled_agents)
    again = plan(replace(snapshot, agents=tuple(shuffled_agents)), shuffled_pending)
    assert again.placements == first.placements
    assert again.waiting == first.waiting
    assert again.preemptions == first.preemptions


@SETTINGS
@given(CASES)
def test_a_plan_never_holds_part_of_an_all_or_nothing_group(case: Work) -> None:
    snapshot, pending = case
    placed = {p.task_id for p in plan(snapshot, pending).placements}
    gangs: dict[str, set[bool]] = {}
    for task in pending:
        if task.gang is not None:
            gangs.setdefault(task.gang, set()).add(task.id in placed)
    assert all(len(outcomes) == 1 for outcomes in gangs.values()), gangs


@SETTINGS
@given(CASES)
def test_preemptions_only_name_other_owners_tasks_of_no_higher_priority_for_unschedulable_ones(
    case: Work,
) -> None:
    snapshot, pending = case
    result = plan(snapshot, pending)
    placed = {t.task_id: t for t in snapshot.placed}
    tasks = {t.id: t for t in pending}
    for p in result.preemptions:
        assert placed[p.task_id].priority <= tasks[p.by].priority
        assert placed[p.task_id].owner != tasks[p.by].owner
        assert result.waiting[p.by].code is Code.UNSCHEDULABLE


@SETTINGS
@given(CASES)
def test_preemptions_take_from_owners_over_their_share_for_owners_below_theirs(
    case: Work,
) -> None:
    snapshot, pending = case
    result = plan(snapshot, pending)
    if not result.preemptions:
        return
    tasks = {t.id: t for t in pending}
    placed = {t.task_id: t for t in snapshot.placed}
    # Shares when the preempt stage starts: what is placed, plus this plan's placements.
    held: dict[str, Resources] = {}
    holders = [(t.owner, t.resources) for t in snapshot.placed]
    holders += [(tasks[p.task_id].owner, tasks[p.task_id].resources) for p in result.placements]
    for owner, resources in holders:
        held[owner] = held.get(owner, Resources()) + resources
    capacity = sum((a.total for a in snapshot.agents), Resources())
    owners = {t.owner for t in snapshot.placed} | {t.owner for t in pending}
    fair = 1 / sum(snapshot.weights.get(o, 1.0) for o in owners)

    def share(owner: str) -> float:
        mine = held.get(owner, Resources()) + snapshot.past.get(owner, Resources())
        return dominant_share(mine, capacity, snapshot.weights.get(owner, 1.0))

    for q in result.preemptions:
        assert share(tasks[q.by].owner) < fair, q
        assert share(placed[q.task_id].owner) > fair, q
