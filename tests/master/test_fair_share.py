"""The master feeds fair share: the accounts' weights and quotas reach each pass, work over a
quota waits with its reason, and decayed usage is kept from what tasks hold, written to the
store and read back by the next master."""

from __future__ import annotations

import asyncio
import math

import pytest

from corral.master.fairshare import UsageLedger
from corral.master.master import Master
from corral.scheduler.model import Resources
from corral.spec.accounts import ShareSettings, UserChange, UserSpec
from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from tests.master.sim import Sim

HOUR = 3600.0


def submit(sim: Sim, name: str, owner: str, n: int, cpus: float = 1) -> None:
    spec = JobSpec.model_validate(
        {"name": name, "array": f"0-{n - 1}", "task": {"shell": "true", "cpus": cpus}}
    )
    sim.master.jobs.submit(spec, owner)


def placed(sim: Sim, owner: str) -> int:
    return sum(1 for t in sim.master.state.tasks.values() if t.owner == owner and t.state.active)


def waiting(sim: Sim, owner: str) -> set[str]:
    return {
        t.waiting
        for t in sim.master.state.tasks.values()
        if t.owner == owner and t.state is TaskState.PENDING
    }


def test_a_users_quota_caps_what_is_placed_and_the_rest_waits_with_the_reason(sim: Sim) -> None:
    async def scenario() -> None:
        sim.master.accounts.add_user(UserSpec(name="alice"))
        sim.master.accounts.change_user("alice", UserChange(quota_cpus=3))
        await sim.add_agent("a1", cpus=8)
        submit(sim, "sweep", "alice", 6)
        await sim.settle()
        assert placed(sim, "alice") == 3
        assert waiting(sim, "alice") == {"quota: user alice at 3/3 cpus"}
        # Raising the quota lets the rest in at the next pass.
        sim.master.accounts.change_user("alice", UserChange(quota_cpus=None))
        await sim.settle()
        assert placed(sim, "alice") == 6

    asyncio.run(scenario())


def test_a_groups_quota_caps_its_users_together(sim: Sim) -> None:
    async def scenario() -> None:
        accounts = sim.master.accounts
        accounts.add_group("physics")
        for name in ("alice", "bob"):
            accounts.add_user(UserSpec(name=name, group="physics"))
        accounts.change_group("physics", ShareSettings(quota_tasks=5))
        await sim.add_agent("a1", cpus=16)
        submit(sim, "a", "alice", 4)
        submit(sim, "b", "bob", 4)
        await sim.settle()
        assert placed(sim, "alice") + placed(sim, "bob") == 5
        assert waiting(sim, "bob") | waiting(sim, "alice") == {"quota: group physics at 5/5 tasks"}

    asyncio.run(scenario())


def test_weights_of_user_and_group_multiply(sim: Sim) -> None:
    async def scenario() -> None:
        accounts = sim.master.accounts
        accounts.add_group("physics")
        accounts.add_user(UserSpec(name="alice", group="physics"))
        accounts.add_user(UserSpec(name="bob"))
        accounts.change_user("alice", UserChange(weight=1.5))
        accounts.change_group("physics", ShareSettings(weight=2))  # alice: 3
        await sim.add_agent("a1", cpus=12, mem=100_000)
        submit(sim, "a", "alice", 20)
        submit(sim, "b", "bob", 20)
        await sim.settle()
        assert (placed(sim, "alice"), placed(sim, "bob")) == (9, 3)

    asyncio.run(scenario())


def test_usage_is_counted_from_what_tasks_hold_and_a_new_master_goes_on_from_it(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        sim.master.accounts.add_user(UserSpec(name="alice"))
        agent = await sim.add_agent("a1", cpus=4)
        submit(sim, "sweep", "alice", 2, cpus=2)
        await sim.master.scheduler.run_once()  # one pass places both: they hold from now
        for task_id in agent.launched():
            agent.report(task_id, TaskState.RUNNING)
        sim.clock.t += HOUR
        for task_id in agent.launched():
            agent.report(task_id, TaskState.FINISHED)
        # Nothing waits: the pass counts usage, and writes it (over a minute since the last).
        await sim.master.scheduler.run_once()
        tau = sim.master.fair_share.ledger.tau
        expected = 4 * tau * (1 - math.exp(-HOUR / tau)) / 3600  # 4 cpus for an hour, decayed
        (line,) = [u for u in sim.master.queries.share().users if u.user == "alice"]
        assert line.usage.cpu_hours == pytest.approx(expected, rel=1e-6)
        assert line.running == 0 and line.waiting == 0

        again = Master(sim.store, sim.clock)
        again.agents.load()
        again.state.load()
        again.fair_share.load()
        (line,) = [u for u in again.queries.share().users if u.user == "alice"]
        assert line.usage.cpu_hours == pytest.approx(expected, rel=1e-6)
        assert line.usage_share == pytest.approx(expected * 3600 / tau / 4, abs=1e-3)

    asyncio.run(scenario())


def test_the_ledger_halves_usage_every_half_life_and_holding_for_ever_counts_as_holding() -> None:
    ledger = UsageLedger(half_life=HOUR)
    held = Resources(2000, 1024)
    ledger.advance(0.0, {"alice": held})
    ledger.advance(1000 * HOUR, {})
    assert ledger.past()["alice"] == held
    before = ledger.usage["alice"][0]
    ledger.advance(1001 * HOUR, {})
    assert ledger.usage["alice"][0] == pytest.approx(before / 2)


def test_the_ledger_counts_the_same_in_many_steps_as_in_one() -> None:
    one, many = UsageLedger(half_life=HOUR), UsageLedger(half_life=HOUR)
    held = {"alice": Resources(3000, 0, 0, 1)}
    one.advance(0.0, held)
    many.advance(0.0, held)
    for step in range(1, 101):
        many.advance(step * 36.0, held)
    one.advance(3600.0, held)
    assert many.usage["alice"] == pytest.approx(one.usage["alice"])
    assert one.as_of(7200.0)["alice"][0] == pytest.approx(
        3000 * one.tau * (1 - math.exp(-7200 / one.tau))
    )


def test_a_half_life_that_is_not_positive_is_refused() -> None:
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="half-life"):
            UsageLedger(half_life=bad)


def test_one_gpu_held_for_ever_counts_as_one_gpu_held() -> None:
    ledger = UsageLedger(half_life=HOUR)
    ledger.advance(0.0, {"alice": Resources(gpus=1)})
    ledger.advance(1000 * HOUR, {})
    assert ledger.past()["alice"].gpus == 1


def test_what_each_owner_holds_is_kept_as_tasks_are_placed_and_end(sim: Sim) -> None:
    def counted() -> dict[str, Resources]:
        held: dict[str, Resources] = {}
        for t in sim.master.state.tasks.values():
            if t.state.active:
                held[t.owner] = held.get(t.owner, Resources()) + t.resources
        return held

    async def scenario() -> None:
        agent = await sim.add_agent("a1", cpus=4)
        submit(sim, "a", "alice", 3)
        submit(sim, "b", "bob", 3)
        await sim.settle()
        assert sim.master.state.held == counted() != {}
        first, second, *_ = agent.launched()
        agent.report(first, TaskState.RUNNING)
        agent.report(first, TaskState.FINISHED)
        agent.report(second, TaskState.FAILED)
        await sim.settle()
        assert sim.master.state.held == counted()
        await sim.master.kill_job("a")
        sim.confirm_kills()
        await sim.settle()
        assert sim.master.state.held == counted()
        assert "alice" not in sim.master.state.held

    asyncio.run(scenario())
