"""Fair share in the pure core: 100,000 waiting tasks of 1,000 users on 1,000 simulated agents.

Run from the repository root: ``python bench/fairshare.py``. Every user has 100 tasks waiting
(one job each: cpu-heavy, memory-heavy or balanced), a weight (theirs times their group's:
0.5 to 8), a decayed past (a random fraction of the cluster), and some have quotas: one user
in ten a cpu cap, five of the fifty groups a running-tasks cap on their users together. The
work asks for about six times what the cluster has, so most of it waits.

Prints, side by side with the targets: decisions/s (every waiting task placed or told why it
waits, best of a few runs; target >= 20,000/s) and how far the plan is from DRF's shares.

DRF's promise: each task goes to the user with the lowest weighted dominant share (what they
hold plus their decayed past, over their weight) at that moment. So once the plan is made,
every user left waiting for room (not for a quota) should stand at the same share, the water
level, and no user given work should stand above it by more than their last task. The figures:
the level (the highest share at which a user was given a task) and the largest deviation (how
far below the level a user was left waiting for room), beside one task's share. Users whose
decayed past already puts them above the level rightly get nothing.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Mapping, Sequence

from corral.scheduler import AgentSnapshot, Plan, Resources, Snapshot, TaskRequest, plan
from corral.scheduler.fairshare import dominant_share
from corral.scheduler.harness import check_plan, quota, res

SEED = 20261206
AGENTS = 1_000
USERS = 1_000
TASKS_EACH = 100
GROUPS = 50
TARGET = 20_000  # decisions/s
SHAPES = (res(1, 2_048), res(2, 1_024), res(0.5, 8_192), res(1, 4_096))  # cpus, MiB


def make_agents(rng: random.Random | None = None) -> tuple[AgentSnapshot, ...]:
    """1,000 alike agents of 16 cpus and 64 GiB; with ``rng``, of 12, 16, 24 or 64 cpus and
    48, 64, 96 or 256 GiB (sizes some tasks no longer fit once a few run there)."""

    def size() -> Resources:
        if rng is None:
            return res(16, 65_536)
        return res(rng.choice((12, 16, 24, 64)), rng.choice((49_152, 65_536, 98_304, 262_144)))

    return tuple(
        AgentSnapshot(id=f"agent-{i:04d}", hostname=f"node{i:04d}", total=size(), used=res())
        for i in range(AGENTS)
    )


def make_work(
    rng: random.Random, agents: tuple[AgentSnapshot, ...]
) -> tuple[Snapshot, list[TaskRequest]]:
    """The users' tasks, weights, groups, quotas and decayed past."""
    capacity = sum((a.total for a in agents), Resources())
    users = [f"user{u:04d}" for u in range(USERS)]
    group_of = {u: f"group{i % GROUPS:02d}" for i, u in enumerate(users)}
    group_weight = {g: rng.choice((0.5, 1.0, 2.0)) for g in sorted(set(group_of.values()))}
    weights = {u: rng.choice((0.5, 1.0, 1.0, 2.0, 4.0)) * group_weight[group_of[u]] for u in users}
    quotas = {u: quota(cpus=rng.choice((8, 16, 32))) for u in users if rng.random() < 0.1}
    group_quotas = {f"group{g:02d}": quota(tasks=300) for g in range(0, GROUPS, 10)}
    past = {}
    for u in users:
        if rng.random() < 0.5:
            fraction = rng.random() * 2 / USERS  # up to twice an equal share, held long ago
            past[u] = Resources(
                int(capacity.millicpus * fraction), int(capacity.mem * fraction * rng.random())
            )
    pending = []
    for n, u in enumerate(users):
        shape = rng.choice(SHAPES)
        pending += [
            TaskRequest(
                id=f"{u}-{i:03d}",
                group=f"{u}-sweep",
                resources=shape,
                owner=u,
                priority=rng.choice((0, 0, 0, 1)),
                order=n * TASKS_EACH + i,
            )
            for i in range(TASKS_EACH)
        ]
    snapshot = Snapshot(
        agents=agents,
        weights=weights,
        quotas=quotas,
        group_quotas=group_quotas,
        owner_groups=group_of,
        past=past,
    )
    return snapshot, pending


def timed(snapshot: Snapshot, pending: Sequence[TaskRequest]) -> tuple[Plan, float]:
    start = time.perf_counter()
    result = plan(snapshot, pending)
    return result, time.perf_counter() - start


def shares(
    snapshot: Snapshot, pending: Sequence[TaskRequest], result: Plan, capacity: Resources
) -> tuple[dict[str, float], dict[str, float]]:
    """Each user's weighted dominant share once the plan runs, and one of their tasks' share."""
    tasks = {t.id: t for t in pending}
    held: dict[str, Resources] = {}
    for p in result.placements:
        t = tasks[p.task_id]
        held[t.owner] = held.get(t.owner, Resources()) + t.resources
    owners = {t.owner for t in pending}
    share, step = {}, {}
    for u in owners:
        w = snapshot.weights.get(u, 1.0)
        mine = held.get(u, Resources()) + snapshot.past.get(u, Resources())
        share[u] = dominant_share(mine, capacity, w)
        one = next(t.resources for t in pending if t.owner == u)
        step[u] = dominant_share(one, capacity, w)
    return share, step


def deviation(
    pending: Sequence[TaskRequest],
    result: Plan,
    share: Mapping[str, float],
    step: Mapping[str, float],
) -> None:
    """Print how far the plan stands from DRF's promise."""
    tasks = {t.id: t for t in pending}
    quota_bound = {
        tasks[i].owner for i, s in result.waiting.items() if s.reason.startswith("quota")
    }
    for_room = {tasks[i].owner for i in result.waiting} - quota_bound
    given = {tasks[p.task_id].owner for p in result.placements}
    # The level: the highest share at which a user was given a task (before that task).
    level = max(share[u] - step[u] for u in given)
    below = [u for u in for_room if share[u] < level]
    worst = max((level - share[u] for u in below), default=0.0)
    above = sum(1 for u in for_room if share[u] >= level)
    one_task = statistics.median(step.values())
    print(
        f"users: {len(share):,}; given work: {len(given):,}; left waiting for room: "
        f"{len(for_room):,} ({above:,} of them at or above the level), "
        f"held back by a quota: {len(quota_bound):,}"
    )
    print(
        f"DRF level (weighted dominant share): {level:.6f}; users left waiting below it: "
        f"{len(below)}; largest deviation from the DRF shares: {worst:.2e} = "
        f"{worst / one_task:.2f} of a task (one task's share: median {one_task:.2e}, "
        f"largest {max(step.values()):.2e})"
    )


def run(label: str, agents: tuple[AgentSnapshot, ...]) -> None:
    """Time ``plan()`` on ``agents``, check the plan, print the figures."""
    capacity = sum((a.total for a in agents), Resources())
    snapshot, pending = make_work(random.Random(SEED), agents)
    runs = [timed(snapshot, pending) for _ in range(3)]
    result, seconds = runs[0][0], min(s for _, s in runs)
    errors = check_plan(snapshot, pending, result)
    if errors:
        raise SystemExit("unsound plan:\n" + "\n".join(errors[:20]))
    decisions = len(result.placements) + len(result.waiting)
    print(
        f"{label}: {len(pending):,} waiting tasks of {USERS:,} users on {AGENTS:,} agents "
        f"(weights, {len(snapshot.quotas)} user and {len(snapshot.group_quotas)} group quotas, "
        f"{len(snapshot.past)} users with a decayed past)"
    )
    print(
        f"plan(): {len(result.placements):,} placed, {len(result.waiting):,} told why they wait, "
        f"in {seconds:.3f} s (best of {len(runs)})"
    )
    rate = decisions / seconds
    verdict = "met" if rate >= TARGET else "NOT MET"
    print(
        f"{rate:,.0f} decisions/s (target >= {TARGET:,}/s: {verdict}); "
        f"{len(result.placements) / seconds:,.0f} placements/s"
    )
    share, step = shares(snapshot, pending, result, capacity)
    deviation(pending, result, share, step)


def main() -> None:
    """The work on alike agents, then on agents of mixed sizes."""
    run("alike agents", make_agents())
    print()
    run("mixed agents", make_agents(random.Random(SEED + 1)))


if __name__ == "__main__":
    main()
