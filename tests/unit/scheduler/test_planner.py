"""The wiring: input validation, and ``plan`` agreeing with the exhaustive reference at scale."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from corral.scheduler import (
    AgentSnapshot,
    Constraint,
    Operator,
    Quota,
    Resources,
    Snapshot,
    Strategy,
    TaskRequest,
    plan,
    plan_exhaustive,
    selection,
)
from corral.scheduler.harness import Harness, check_plan, first_refusals


def test_an_agent_id_given_twice_is_refused() -> None:
    h = Harness()
    h.add_agent("a")
    h.add_agent("a")
    with pytest.raises(ValueError, match="agent id 'a' appears twice"):
        h.plan()


def test_a_task_id_pending_twice_is_refused() -> None:
    task = TaskRequest("t", "g", Resources(1000))
    with pytest.raises(ValueError, match="task id 't' is pending twice"):
        plan(Snapshot(agents=()), [task, task])


def test_nothing_pending_gives_an_empty_plan() -> None:
    assert plan(Snapshot(agents=()), []).placements == ()


def test_placements_come_in_decision_order() -> None:
    h = Harness()
    h.add_agents(2)
    h.add_task("second", order=2)
    h.add_task("first", order=1)
    assert [p.task_id for p in h.plan().placements] == ["first", "second"]


def random_cluster(
    seed: int, agents: int = 60, groups: int = 30, size: int = 25, contended: bool = False
) -> Harness:
    """A mixed cluster, big enough that rankings, caches and fair share all come into play.

    ``contended``: half of each agent already runs low-priority work, some pending groups are
    all-or-nothing and some outrank the placed work (the permit and preempt stages at work).
    """
    rng = random.Random(seed)
    h = Harness()
    for i in range(agents):
        cpus = rng.choice((2, 4, 8)) * (60 // agents)
        h.add_agent(
            f"agent-{i:02d}",
            cpus=cpus,
            mem=rng.choice((2048, 8192)) * (60 // agents),
            hostname=f"host-{i % 50}",
            drivers=("process", "docker") if rng.random() < 0.7 else ("process",),
            schedulable=rng.random() > 0.05,
            rack=f"r{i % 6}",
        )
        if contended:
            for j in range(2):
                h.add_placed(f"old-{i}-{j}", f"agent-{i:02d}", cpus=cpus / 4, priority=j)
    choices = [
        (),
        (),
        (Constraint("rack", Operator.LIKE, "r[0-3]"),),
        (Constraint("rack", Operator.UNLIKE, "r[45]"),),
        (Constraint("hostname", Operator.UNIQUE),),
        (Constraint("rack", Operator.MAX_PER, "4"),),
        (Constraint("hostname", Operator.MAX_PER, "3"),),
        (Constraint("rack", Operator.GROUP_BY),),
        (Constraint("rack", Operator.CLUSTER),),
        (Constraint("rack", Operator.CLUSTER, "r2"), Constraint("agent", Operator.MAX_PER, "2")),
    ]
    twin: dict[str, Any] = {}
    for g in range(groups):
        if contended and g % 3 == 2:
            # The shape of the gang before, on its own: it meets the agents the gang let go.
            h.add_tasks(rng.randint(1, size), **{**twin, "group": f"job{g}", "gang": None})
            continue
        twin = dict(
            group=f"job{g}",
            cpus=rng.choice((0.5, 1, 2)),
            mem=rng.choice((256, 1024)),
            driver=rng.choice(("process", "docker")),
            constraints=rng.choice(choices),
            strategy=rng.choice((Strategy.BINPACK, Strategy.SPREAD)),
            owner=rng.choice(("alice", "bob", "carol")),
            priority=rng.choice((0, 1, 2, 3) if contended else (0, 1)),
            gang=f"job{g}" if contended and g % 3 == 1 else None,
        )
        h.add_tasks(rng.randint(1, size), **twin)
    h.quotas = {"carol": Quota(20_000 * (60 // agents), 100_000)}
    h.weights = {"alice": 2.0}
    return h


@pytest.mark.parametrize(
    ("seed", "agents", "groups", "size"),
    [
        pytest.param(1, 60, 30, 25, id="sixty_agents_thirty_jobs"),
        pytest.param(2, 60, 30, 25, id="sixty_agents_thirty_other_jobs"),
        # Few big agents, many small jobs: shapes shared across jobs, long-lived heaps.
        pytest.param(3, 6, 400, 4, id="six_big_agents_four_hundred_small_jobs"),
        pytest.param(4, 12, 40, 60, id="twelve_big_agents_forty_big_jobs"),
    ],
)
def test_plan_matches_the_exhaustive_reference_on_a_mixed_cluster(
    seed: int, agents: int, groups: int, size: int
) -> None:
    h = random_cluster(seed, agents, groups, size)
    fast = plan(h.snapshot(), h.pending)
    slow = plan_exhaustive(h.snapshot(), h.pending)
    assert fast.placements == slow.placements
    assert fast.waiting.keys() == slow.waiting.keys()
    assert first_refusals(h.pending, fast) == first_refusals(h.pending, slow)
    assert check_plan(h.snapshot(), h.pending, fast) == []
    assert 0 < len(fast.waiting) < len(h.pending)  # the scenario exercises both outcomes


def test_a_group_by_task_that_had_to_wait_is_reconsidered_once_its_group_moves_on() -> None:
    h = Harness()
    h.add_agent("a1", cpus=4, rack="a")
    h.add_agent("b1", cpus=2, rack="b")
    h.add_placed("old", "a1", cpus=0, mem=0)  # the group already holds rack a
    by_rack = [Constraint("rack", Operator.GROUP_BY)]
    h.add_task("other", group="other", priority=3)  # BINPACK puts it on b1: 1 cpu left there
    h.add_task("x0", cpus=2, constraints=by_rack, priority=2)  # rack a is ahead, b1 is full
    h.add_task("y0", cpus=1, constraints=by_rack, priority=1)  # evens the racks out on b1
    h.add_task("x1", cpus=2, constraints=by_rack)  # like x0, but rack a may now take it
    result = h.plan()
    assert [(p.task_id, p.agent_id) for p in result.placements] == [
        ("other", "b1"),
        ("y0", "b1"),
        ("x1", "a1"),
    ]
    assert list(result.waiting) == ["x0"]


@pytest.mark.parametrize(
    ("seed", "agents", "groups", "size"),
    [
        pytest.param(6, 20, 60, 12, id="twenty_agents_sixty_jobs"),
        pytest.param(7, 6, 200, 4, id="six_big_agents_two_hundred_small_jobs"),
    ],
)
def test_gangs_and_preemptions_match_the_exhaustive_reference_on_a_contended_cluster(
    seed: int, agents: int, groups: int, size: int
) -> None:
    h = random_cluster(seed, agents, groups, size, contended=True)
    fast = plan(h.snapshot(), h.pending)
    slow = plan_exhaustive(h.snapshot(), h.pending)
    assert fast.placements == slow.placements
    assert fast.waiting.keys() == slow.waiting.keys()
    assert first_refusals(h.pending, fast) == first_refusals(h.pending, slow)
    assert fast.preemptions == slow.preemptions
    assert check_plan(h.snapshot(), h.pending, fast) == []
    # The scenario exercises both outcomes of permit, and preemption.
    placed = {p.task_id for p in fast.placements}
    gangs = {t.gang for t in h.pending if t.gang is not None}
    assert {t.gang for t in h.pending if t.id in placed and t.gang} not in (set(), gangs)
    assert fast.preemptions


@pytest.mark.parametrize(
    ("fork_after", "sweep_slack"),
    [
        pytest.param(0, 0, id="forking_and_sweeping_at_every_chance"),
        pytest.param(10**9, 10**9, id="never_forking_nor_sweeping"),
    ],
)
def test_the_lazy_rankings_shortcuts_never_change_the_plan(
    monkeypatch: pytest.MonkeyPatch, fork_after: int, sweep_slack: int
) -> None:
    for contended in (False, True):
        h = random_cluster(5, agents=20, groups=60, size=30, contended=contended)
        expected = plan_exhaustive(h.snapshot(), h.pending)
        monkeypatch.setattr(selection, "FORK_AFTER", fork_after)
        monkeypatch.setattr(selection, "SWEEP_SLACK", sweep_slack)
        assert plan(h.snapshot(), h.pending).placements == expected.placements


@pytest.mark.parametrize(
    ("host_paths", "privileged"),
    [(("/etc",), False), ((), True)],
    ids=["a_volume_outside_the_roots", "a_privileged_container"],
)
def test_tasks_alike_but_for_what_they_mount_or_privilege_get_their_own_static_checks(
    host_paths: tuple[str, ...], privileged: bool
) -> None:
    # The static checks were once shared by driver and constraints alone: the task that fits
    # made the one that does not look as if it fitted too.
    agent = AgentSnapshot("a", "a", Resources(4000, 4096), Resources(), volume_roots=("/data",))
    fits = TaskRequest("fits", "g1", Resources(100, 1))
    refused = TaskRequest("refused", "g2", Resources(100, 1), host_paths=host_paths)
    refused = replace(refused, privileged=privileged)
    snapshot = Snapshot(agents=(agent,))
    result = plan(snapshot, [fits, refused])
    assert [p.task_id for p in result.placements] == ["fits"]
    assert list(result.waiting) == ["refused"]
    assert check_plan(snapshot, [fits, refused], result) == []
