"""Quotas: a hard cap on what an owner holds, counting running tasks and this plan's."""

from __future__ import annotations

from corral.scheduler.harness import Harness, check_plan, res


def test_a_quota_caps_the_resources_an_owner_is_given() -> None:
    h = Harness()
    h.add_agents(2, cpus=8)
    h.quotas = {"alice": res(2, 10_000)}
    h.add_tasks(5, owner="alice")
    result = h.plan()
    assert len(result.placements) == 2
    assert set(result.unplaced.values()) == {"quota of owner alice exhausted (cpus)"}
    assert check_plan(h.snapshot(), h.pending, result) == []


def test_a_quota_counts_tasks_already_running() -> None:
    h = Harness()
    h.add_agents(2, cpus=8)
    h.add_placed("old", "agent-00", owner="alice", cpus=1)
    h.quotas = {"alice": res(2, 10_000)}
    h.add_tasks(3, owner="alice")
    assert len(h.plan().placements) == 1


def test_one_owners_quota_does_not_limit_another() -> None:
    h = Harness()
    h.add_agents(1, cpus=8)
    h.quotas = {"alice": res(1, 10_000)}
    h.add_tasks(3, group="a", owner="alice")
    h.add_tasks(3, group="b", owner="bob")
    owners = [p.task_id[0] for p in h.plan().placements]
    assert sorted(owners) == ["a", "b", "b", "b"]


def test_a_smaller_task_may_still_fit_a_quota_a_bigger_one_exceeded() -> None:
    h = Harness()
    h.add_agents(1, cpus=8)
    h.quotas = {"alice": res(3, 10_000)}
    h.add_task("big", owner="alice", cpus=2, priority=1)
    h.add_task("bigger", owner="alice", cpus=2, priority=1)
    h.add_task("small", owner="alice", cpus=1)
    result = h.plan()
    assert [p.task_id for p in result.placements] == ["big", "small"]
    assert result.unplaced == {"bigger": "quota of owner alice exhausted (cpus)"}


def test_a_quota_names_every_resource_it_would_exceed() -> None:
    h = Harness()
    h.add_agents(1, cpus=8)
    h.quotas = {"alice": res(1, 100)}
    h.add_task("t", owner="alice", cpus=2, mem=200)
    assert h.plan().unplaced == {"t": "quota of owner alice exhausted (cpus, mem)"}
