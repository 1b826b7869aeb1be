"""Placement throughput of the pure core: 10,000 tasks on 1,000 simulated agents.

Run from the repository root: ``python bench/placement.py``. Prints ``N placements/s`` for
``plan()`` (best of a few runs), then the exhaustive reference on a slice of the same work as a
baseline ratio. The cluster is seeded, so every run plans the same input.

The mix: 20 racks of 50 agents (16-64 cpus, some with docker, some with gpus, a few draining,
some partly used), five owners with weights and one quota, and job arrays / services of 20-400
tasks with LIKE and UNLIKE on the rack, MAX_PER and UNIQUE groups, BINPACK and SPREAD.

Then the permit and preempt stages at work, which the main figure never starts: the same work
with every fifth job all-or-nothing, and the cluster as the first plan left it, running its
placements and the room left taken by a backfill owner, with the tasks it left waiting given
to a newcomer below their fair share (who evicts backfill to make room).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from corral.scheduler import (
    AgentSnapshot,
    Constraint,
    Operator,
    PlacedTask,
    Plan,
    Resources,
    Snapshot,
    Strategy,
    TaskRequest,
    plan,
    plan_exhaustive,
)
from corral.scheduler.harness import check_plan, quota, res

SEED = 20240601
AGENTS = 1_000
TASKS = 10_000
RACKS = 20
BASELINE_TASKS = 300  # the exhaustive planner checks every agent per task: keep its slice small
OWNERS = {"alice": 2.0, "bob": 1.0, "carol": 1.0, "dave": 0.5, "erin": 1.0}

Planner = Callable[[Snapshot, Sequence[TaskRequest]], Plan]


def make_agents(rng: random.Random) -> tuple[AgentSnapshot, ...]:
    """The simulated cluster, racks ``r00``..``r19``."""
    agents = []
    for i in range(AGENTS):
        cpus = rng.choice((16, 32, 64))
        mem = rng.choice((65_536, 131_072, 262_144))
        gpus = 4 if rng.random() < 0.05 else 0
        total = res(cpus, mem, 500_000, gpus)
        busy = rng.random() * 0.25
        used = res(round(cpus * busy, 1), int(mem * busy))
        drivers = {"process", "docker"} if rng.random() < 0.8 else {"process"}
        agents.append(
            AgentSnapshot(
                id=f"agent-{i:04d}",
                hostname=f"node{i:04d}.cluster",
                total=total,
                used=used,
                attributes={"rack": f"r{i * RACKS // AGENTS:02d}", "zone": f"z{i % 3}"},
                drivers=frozenset(drivers),
                schedulable=rng.random() >= 0.02,
            )
        )
    return tuple(agents)


def make_constraints(rng: random.Random, size: int) -> tuple[Constraint, ...]:
    """One group's constraints: about a third LIKE, a quarter UNLIKE, some MAX_PER/UNIQUE."""
    roll = rng.random()
    if roll < 0.35:
        return (
            Constraint("rack", Operator.LIKE, rng.choice(("r0[0-9]", "r1[0-4]", "r(0|1)[02468]"))),
        )
    if roll < 0.60:
        return (Constraint("rack", Operator.UNLIKE, rng.choice(("r1[5-9]", "r0[0-3]"))),)
    if roll < 0.72:
        return (Constraint("hostname", Operator.MAX_PER, "2"),)
    if roll < 0.80:
        return (
            Constraint("rack", Operator.MAX_PER, str(size // 10 + 1)),
            Constraint("rack", Operator.UNLIKE, "r19"),
        )
    if roll < 0.86:
        # Five racks hold at most 250 hosts: big groups leave tasks waiting, with a reason.
        return (
            Constraint("hostname", Operator.UNIQUE),
            Constraint("rack", Operator.LIKE, "r0[0-4]"),
        )
    return ()


def make_tasks(rng: random.Random) -> list[TaskRequest]:
    """Job arrays and services until there are ``TASKS`` tasks."""
    tasks: list[TaskRequest] = []
    owners = sorted(OWNERS)
    g = 0
    while len(tasks) < TASKS:
        size = min(rng.choice((20, 50, 100, 200, 400)), TASKS - len(tasks))
        owner = rng.choice(owners)
        gpus = 1 if rng.random() < 0.03 else 0
        resources = res(rng.choice((0.25, 0.5, 1, 2, 4)), rng.choice((256, 512, 1024, 4096)))
        resources = Resources(resources.millicpus, resources.mem, 0, gpus)
        constraints = make_constraints(rng, size)
        strategy = Strategy.SPREAD if rng.random() < 0.3 else Strategy.BINPACK
        driver = "docker" if rng.random() < 0.5 else "process"
        priority = rng.choice((0, 0, 0, 1, 5))
        for i in range(size):
            tasks.append(
                TaskRequest(
                    id=f"job{g:03d}-{i}",
                    group=f"job{g:03d}",
                    resources=resources,
                    driver=driver,
                    constraints=constraints,
                    strategy=strategy,
                    owner=owner,
                    priority=priority,
                    order=len(tasks),
                )
            )
        g += 1
    return tasks


def timed(
    planner: Planner, snapshot: Snapshot, pending: Sequence[TaskRequest]
) -> tuple[Plan, float]:
    """The plan and the seconds it took."""
    start = time.perf_counter()
    result = planner(snapshot, pending)
    return result, time.perf_counter() - start


def best_of(
    runs: int, planner: Planner, snapshot: Snapshot, pending: Sequence[TaskRequest]
) -> tuple[Plan, float]:
    """The plan and the fastest of ``runs`` timings (the plan is the same every run)."""
    results = [timed(planner, snapshot, pending) for _ in range(runs)]
    return results[0][0], min(seconds for _, seconds in results)


def sound(snapshot: Snapshot, pending: Sequence[TaskRequest], result: Plan) -> None:
    """Stop the benchmark on an unsound plan: a fast wrong answer is no figure."""
    errors = check_plan(snapshot, pending, result)
    if errors:
        raise SystemExit("unsound plan:\n" + "\n".join(errors[:20]))


def running(snapshot: Snapshot, pending: Sequence[TaskRequest], result: Plan) -> Snapshot:
    """The cluster once ``result``'s placements run, each at its task's priority, and the
    room they leave filled by one task of a "backfill" owner per agent: a full cluster, where
    the backfill owner holds more than their share."""
    tasks = {t.id: t for t in pending}
    used = {a.id: a.used for a in snapshot.agents}
    placed = []
    for p in result.placements:
        t = tasks[p.task_id]
        used[p.agent_id] += t.resources
        placed.append(PlacedTask(t.id, t.group, p.agent_id, t.owner, t.resources, t.priority))
    for a in snapshot.agents:
        left = a.total - used[a.id]
        placed.append(PlacedTask(f"fill-{a.id}", "fill", a.id, "backfill", replace(left, gpus=0)))
        used[a.id] += replace(left, gpus=0)
    agents = tuple(replace(a, used=used[a.id]) for a in snapshot.agents)
    return replace(snapshot, agents=agents, placed=tuple(placed), preemption=True)


def seams(snapshot: Snapshot, pending: Sequence[TaskRequest], result: Plan) -> None:
    """Time the permit stage (gangs) and the preempt stage (urgent work on a full cluster)."""
    ganged = [replace(t, gang=t.group) if int(t.group[3:]) % 5 == 0 else t for t in pending]
    with_gangs, seconds = best_of(3, plan, snapshot, ganged)
    sound(snapshot, ganged, with_gangs)
    gangs = {t.gang for t in ganged if t.gang is not None}
    down = {t.gang for t in ganged if t.gang is not None and t.id in with_gangs.waiting}
    placed = len(with_gangs.placements)
    print(
        f"every fifth job all-or-nothing: {len(down)} of {len(gangs)} gangs turned down, "
        f"{placed:,} placed in {seconds:.3f} s, {placed / seconds:,.0f} placements/s"
    )
    full = running(snapshot, pending, result)
    # A newcomer, below their share, gets the work left waiting: the preempt stage evicts
    # tasks of the owners over theirs to make room for it.
    urgent = [replace(t, owner="newcomer") for t in pending if t.id in result.waiting]
    preempting, seconds = best_of(3, plan, full, urgent)
    sound(full, urgent, preempting)
    makes_room = len({p.by for p in preempting.preemptions})
    print(
        f"{len(urgent):,} waiting tasks of a newcomer on the full cluster: "
        f"{len(preempting.preemptions):,} preemptions make room for {makes_room:,} in "
        f"{seconds:.3f} s"
    )


def main() -> None:
    """Build the cluster, time ``plan()`` and the exhaustive baseline, print the figures."""
    rng = random.Random(SEED)
    agents = make_agents(rng)
    pending = make_tasks(rng)
    snapshot = Snapshot(
        agents=agents,
        weights=OWNERS,
        quotas={"dave": quota(cpus=800, mem=2_000_000)},
    )
    result, seconds = best_of(3, plan, snapshot, pending)
    sound(snapshot, pending, result)
    placed = len(result.placements)
    groups = len({t.group for t in pending})
    print(f"{len(pending):,} tasks in {groups} groups on {len(agents):,} agents")
    print(f"plan(): {placed:,} placed, {len(result.unplaced):,} unplaced in {seconds:.3f} s")
    print(f"{placed / seconds:,.0f} placements/s")

    head = pending[:BASELINE_TASKS]
    fast, fast_seconds = best_of(3, plan, snapshot, head)
    slow, slow_seconds = timed(plan_exhaustive, snapshot, head)
    same = "same plan" if fast.placements == slow.placements else "PLANS DIFFER"
    n = len(slow.placements)
    print(
        f"baseline, first {len(head)} tasks: exhaustive {n / slow_seconds:,.0f} placements/s, "
        f"plan() {len(fast.placements) / fast_seconds:,.0f} placements/s "
        f"({slow_seconds / fast_seconds:,.0f}x faster, {same})"
    )
    # The same work as one-task jobs (each its own group): no two tasks share a cohort, so the
    # speed must come from shapes shared across jobs.
    singles = [replace(t, group=t.id) for t in pending]
    result_singles, seconds_singles = best_of(3, plan, snapshot, singles)
    placed_singles = len(result_singles.placements)
    print(
        f"the same as {len(singles):,} one-task jobs: {placed_singles:,} placed in "
        f"{seconds_singles:.3f} s, {placed_singles / seconds_singles:,.0f} placements/s"
    )
    reasons = sorted(set(result.unplaced.values()))
    for reason in reasons[:3]:
        print(f"why some wait: {reason}")
    seams(snapshot, pending, result)


if __name__ == "__main__":
    main()
