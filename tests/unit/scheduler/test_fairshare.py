"""Ordering: Dominant Resource Fairness across owners, then priority, order and id within one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.scheduler import Resources, TaskRequest
from corral.scheduler.fairshare import FairQueue, dominant_share
from corral.scheduler.harness import Harness, res, where

CAPACITY = Resources(10_000, 1000, 0, 0)


@pytest.mark.parametrize(
    ("usage", "weight", "expected"),
    [
        (Resources(), 1.0, 0.0),
        (Resources(5000, 100), 1.0, 0.5),
        (Resources(1000, 800), 1.0, 0.8),
        (Resources(5000, 100), 2.0, 0.25),
        (Resources(5000, 100, 50, 1), 1.0, 0.5),
    ],
    ids=[
        "nothing_held_is_a_zero_share",
        "the_share_is_the_largest_fraction_cpus_here",
        "the_share_is_the_largest_fraction_mem_here",
        "a_weight_of_two_halves_the_share",
        "resources_the_cluster_lacks_are_ignored",
    ],
)
def test_dominant_share(usage: Resources, weight: float, expected: float) -> None:
    assert dominant_share(usage, CAPACITY, weight) == pytest.approx(expected)


def owners_in_order(h: Harness) -> list[str]:
    tasks = {t.id: t for t in h.pending}
    return [tasks[p.task_id].owner for p in h.plan().placements]


def test_two_owners_take_turns_so_shares_stay_balanced() -> None:
    h = Harness()
    h.add_agents(4, cpus=4)
    h.add_tasks(10, group="a", owner="alice")
    h.add_tasks(3, group="b", owner="bob")
    assert owners_in_order(h) == ["alice", "bob"] * 3 + ["alice"] * 7


def test_drf_reproduces_the_paper_example_three_cpu_heavy_and_two_mem_heavy() -> None:
    # Ghodsi et al. 2011: 9 cpus, 18 GB; A wants <1 cpu, 4 GB>, B wants <3 cpus, 1 GB>.
    h = Harness()
    h.add_agent("node", cpus=9, mem=18 * 1024)
    h.add_tasks(10, group="a", owner="A", cpus=1, mem=4 * 1024)
    h.add_tasks(10, group="b", owner="B", cpus=3, mem=1024)
    assert owners_in_order(h) == ["A", "B", "A", "B", "A"]


def test_an_owner_with_twice_the_weight_gets_twice_the_share() -> None:
    h = Harness()
    h.add_agent("node", cpus=12, mem=100_000)
    h.weights = {"alice": 2.0}
    h.add_tasks(20, group="a", owner="alice")
    h.add_tasks(20, group="b", owner="bob")
    owners = owners_in_order(h)
    assert (owners.count("alice"), owners.count("bob")) == (8, 4)


def test_resources_already_held_count_toward_the_share() -> None:
    h = Harness()
    h.add_agents(2, cpus=8)
    h.add_placed("old-1", "agent-00", owner="bob", cpus=2)
    h.add_tasks(4, group="a", owner="alice")
    h.add_tasks(3, group="b", owner="bob")
    # Bob holds 2/16 cpus: alice catches up (a tie goes to the first name), then they alternate.
    assert owners_in_order(h) == ["alice"] * 3 + ["bob", "alice", "bob", "bob"]


def test_within_an_owner_higher_priority_goes_first_then_lower_order_then_id() -> None:
    h = Harness()
    h.add_agent("node", cpus=3)
    h.add_task("late", order=9)
    h.add_task("urgent", priority=5, order=10)
    h.add_task("b-early", order=1)
    h.add_task("a-early", order=1)
    result = h.plan()
    assert [p.task_id for p in result.placements] == ["urgent", "a-early", "b-early"]
    assert list(result.unplaced) == ["late"]
    assert where(result) == {"urgent": "node", "a-early": "node", "b-early": "node"}


def test_an_owner_whose_tasks_fail_does_not_block_the_others() -> None:
    h = Harness()
    h.add_agent("node", cpus=2)
    h.add_tasks(3, group="huge", owner="alice", cpus=8)
    h.add_tasks(2, group="small", owner="bob")
    result = h.plan()
    assert len(result.placements) == 2
    assert set(result.unplaced) == {"huge-0", "huge-1", "huge-2"}


def test_fair_queue_reads_usage_live_and_re_ranks_the_owner_after_each_task() -> None:
    usage: dict[str, Resources] = {}
    tasks = [TaskRequest(f"{o}{i}", o, Resources(1000), owner=o) for o in "ab" for i in range(2)]
    queue = FairQueue(tasks, usage, CAPACITY, {})
    seen = []
    for task in queue:
        seen.append(task.id)
        usage[task.owner] = usage.get(task.owner, Resources()) + task.resources
    assert seen == ["a0", "b0", "a1", "b1"]


@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan"), float("inf")])
def test_a_weight_that_is_not_positive_and_finite_is_refused(weight: float) -> None:
    with pytest.raises(ValueError, match="weight of owner"):
        FairQueue([], {}, CAPACITY, {"alice": weight})


def test_an_owner_with_a_decayed_past_goes_behind_by_that_much_and_is_not_shut_out() -> None:
    h = Harness()
    h.add_agent("node", cpus=10, mem=100_000)
    h.past = {"alice": res(cpus=4)}  # alice held 4 cpus for a while, not long ago
    h.add_tasks(20, group="a", owner="alice")
    h.add_tasks(20, group="b", owner="bob")
    owners = owners_in_order(h)
    # Bob first until he holds what alice held before, then they take turns: 3 + 4 = 7.
    assert owners[:4] == ["bob"] * 4
    assert (owners.count("alice"), owners.count("bob")) == (3, 7)


def test_past_usage_counts_against_the_weight_too() -> None:
    h = Harness()
    h.add_agent("node", cpus=12, mem=100_000)
    h.weights = {"alice": 2.0}
    h.past = {"alice": res(cpus=4), "bob": res(cpus=2)}
    h.add_tasks(20, group="a", owner="alice")
    h.add_tasks(20, group="b", owner="bob")
    owners = owners_in_order(h)
    # (n_a + 4) / 2 == n_b + 2 with n_a + n_b == 12: alice 8, bob 4.
    assert (owners.count("alice"), owners.count("bob")) == (8, 4)


OWNERS = ("alice", "bob", "carol", "dave")


@settings(max_examples=200, deadline=None)
@given(
    weights=st.dictionaries(st.sampled_from(OWNERS), st.sampled_from((0.5, 1.0, 2.0, 3.0))),
    past=st.dictionaries(st.sampled_from(OWNERS), st.integers(0, 20)),
    demand=st.dictionaries(st.sampled_from(OWNERS), st.integers(1, 40), min_size=1),
    cpus=st.integers(1, 60),
)
def test_no_owner_left_waiting_is_below_one_given_work_by_more_than_one_task(
    weights: dict[str, float], past: dict[str, int], demand: dict[str, int], cpus: int
) -> None:
    """DRF's promise, with weights and a decayed past: each task went to the owner with the
    lowest share then, so an owner given work ends at most one task above any owner who was
    left waiting."""
    h = Harness()
    h.add_agent("node", cpus=cpus, mem=1_000_000)
    h.weights, h.past = weights, {o: res(cpus=c) for o, c in past.items()}
    for owner, n in demand.items():
        h.add_tasks(n, group=owner, owner=owner)
    given = dict.fromkeys(demand, 0)
    for owner in owners_in_order(h):
        given[owner] += 1

    def share(owner: str, tasks: int) -> float:
        return (tasks + past.get(owner, 0)) / weights.get(owner, 1.0)

    waiting = [o for o in demand if given[o] < demand[o]]
    for a in (o for o in demand if given[o] > 0):
        for b in waiting:
            assert share(a, given[a] - 1) <= share(b, given[b]) + 1e-9, (a, b, given)
