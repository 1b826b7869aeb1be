"""Quotas: hard caps on what a user and their group hold, counting running tasks and this
plan's."""

from __future__ import annotations

from corral.scheduler.harness import Harness, check_plan, quota


def test_a_quota_caps_the_resources_an_owner_is_given() -> None:
    h = Harness()
    h.add_agents(2, cpus=8)
    h.quotas = {"alice": quota(cpus=2)}
    h.add_tasks(5, owner="alice")
    result = h.plan()
    assert len(result.placements) == 2
    assert set(result.unplaced.values()) == {"quota: user alice at 2/2 cpus"}
    assert check_plan(h.snapshot(), h.pending, result) == []


def test_a_quota_counts_tasks_already_running() -> None:
    h = Harness()
    h.add_agents(2, cpus=8)
    h.add_placed("old", "agent-00", owner="alice", cpus=1)
    h.quotas = {"alice": quota(cpus=2)}
    h.add_tasks(3, owner="alice")
    assert len(h.plan().placements) == 1


def test_one_owners_quota_does_not_limit_another() -> None:
    h = Harness()
    h.add_agents(1, cpus=8)
    h.quotas = {"alice": quota(cpus=1)}
    h.add_tasks(3, group="a", owner="alice")
    h.add_tasks(3, group="b", owner="bob")
    owners = [p.task_id[0] for p in h.plan().placements]
    assert sorted(owners) == ["a", "b", "b", "b"]


def test_a_smaller_task_may_still_fit_a_quota_a_bigger_one_exceeded() -> None:
    h = Harness()
    h.add_agents(1, cpus=8)
    h.quotas = {"alice": quota(cpus=3)}
    h.add_task("big", owner="alice", cpus=2, priority=1)
    h.add_task("bigger", owner="alice", cpus=2, priority=1)
    h.add_task("small", owner="alice", cpus=1)
    result = h.plan()
    assert [p.task_id for p in result.placements] == ["big", "small"]
    assert result.unplaced == {"bigger": "quota: user alice at 2/3 cpus"}


def test_a_quota_names_every_resource_it_would_exceed() -> None:
    h = Harness()
    h.add_agents(1, cpus=8)
    h.quotas = {"alice": quota(cpus=1, mem=100)}
    h.add_task("t", owner="alice", cpus=2, mem=200)
    assert h.plan().unplaced == {"t": "quota: user alice at 0/1 cpus, 0/100 MiB mem"}


def test_a_cap_on_running_tasks_counts_tasks_whatever_their_size() -> None:
    h = Harness()
    h.add_agents(2, cpus=8)
    h.add_placed("old", "agent-00", owner="alice", cpus=0.1)
    h.quotas = {"alice": quota(tasks=3)}
    h.add_tasks(5, owner="alice", cpus=0.5)
    result = h.plan()
    assert len(result.placements) == 2
    assert set(result.unplaced.values()) == {"quota: user alice at 3/3 tasks"}


def test_a_groups_quota_caps_its_users_together_and_names_the_group() -> None:
    h = Harness()
    h.add_agents(2, cpus=8)
    h.owner_groups = {"alice": "physics", "bob": "physics", "carol": "chemistry"}
    h.group_quotas = {"physics": quota(cpus=5)}
    h.add_placed("old", "agent-00", owner="bob", cpus=1)
    for owner in ("alice", "bob", "carol"):
        h.add_tasks(4, group=owner, owner=owner)
    result = h.plan()
    owners = sorted(p.task_id.split("-")[0] for p in result.placements)
    assert owners.count("alice") + owners.count("bob") == 4  # 1 running + 4 = 5 cpus
    assert owners.count("carol") == 4  # another group: not capped by physics' quota
    assert set(result.unplaced.values()) == {"quota: group physics at 5/5 cpus"}
    assert check_plan(h.snapshot(), h.pending, result) == []


def test_a_users_quota_and_their_groups_both_apply_the_tighter_first() -> None:
    h = Harness()
    h.add_agents(1, cpus=16)
    h.owner_groups = {"alice": "physics", "bob": "physics"}
    h.quotas = {"alice": quota(cpus=2)}
    h.group_quotas = {"physics": quota(cpus=5, mem=100_000)}
    h.add_tasks(6, group="a", owner="alice")
    h.add_tasks(6, group="b", owner="bob")
    result = h.plan()
    waiting = result.unplaced
    assert len([p for p in result.placements if p.task_id.startswith("a-")]) == 2
    assert len([p for p in result.placements if p.task_id.startswith("b-")]) == 3
    assert waiting["a-5"] == "quota: user alice at 2/2 cpus"
    assert waiting["b-5"] == "quota: group physics at 5/5 cpus"
    assert check_plan(h.snapshot(), h.pending, result) == []


def test_a_gang_over_its_groups_quota_waits_whole() -> None:
    h = Harness()
    h.add_agents(4, cpus=4)
    h.owner_groups = {"alice": "physics"}
    h.group_quotas = {"physics": quota(tasks=3)}
    h.add_tasks(4, group="mpi", owner="alice", gang="mpi")
    result = h.plan()
    assert result.placements == ()
    (reason,) = set(result.unplaced.values())
    assert reason.endswith("mpi-3 does not fit: quota: group physics at 3/3 tasks")
