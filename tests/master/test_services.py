"""The service engine, step by step: deployments, scaling, backoff, rolling upgrades, rollback,
deletion and agent loss, on simulated agents."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from corral.master.jobs import Conflict
from corral.master.master import Master
from corral.master.policy.effects import MarkLost
from corral.spec.protocol import AGENT_SHUTDOWN, StatusUpdate
from corral.spec.services import ServiceSpec
from corral.spec.states import TaskState
from tests.master.sim import Sim

WEB: dict[str, Any] = {
    "id": "/web",
    "instances": 2,
    "task": {"shell": "serve", "cpus": 0.5, "mem": 64},
}
CHECKED: dict[str, Any] = {
    **WEB,
    "health_checks": [{"protocol": "COMMAND", "command": "true", "interval": 1, "timeout": 1}],
}


def run(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(fn())


def deployment_states(sim: Sim) -> dict[str, str]:
    return {r["id"]: r["state"] for r in sim.store.deployments()}


def test_a_new_service_starts_its_instances_spread_and_its_deployment_succeeds(sim: Sim) -> None:
    async def go() -> None:
        a, b = await sim.add_agent("a"), await sim.add_agent("b")
        dep = sim.deploy(WEB)
        await sim.settle()
        assert len(a.launched()) == 1 and len(b.launched()) == 1
        assert deployment_states(sim)[dep] == "RUNNING"
        sim.run_all("/web")
        await sim.settle()
        assert deployment_states(sim)[dep] == "SUCCEEDED"
        assert sim.master.services.deployments == {}

    run(go)


def test_scaling_up_adds_tasks_and_scaling_down_stops_the_youngest(sim: Sim) -> None:
    async def go() -> None:
        await sim.add_agent("a")
        sim.deploy(WEB)
        await sim.settle()
        sim.run_all("/web")
        await sim.settle()
        first = [t.id for t in sim.wanted("/web")]
        sim.clock.t += 10
        sim.master.services.scale("/web", 3)
        await sim.settle()
        assert len(sim.wanted("/web")) == 3
        third = [t.id for t in sim.wanted("/web") if t.id not in first]
        sim.run_all("/web")
        await sim.settle()
        sim.master.services.scale("/web", 2)
        await sim.settle()
        assert sorted(t.id for t in sim.wanted("/web")) == sorted(first)
        assert sim.agents["a"].killed() == third

    run(go)


def test_a_scale_keeps_the_configuration_and_restarts_nothing(sim: Sim) -> None:
    async def go() -> None:
        await sim.add_agent("a")
        sim.deploy(WEB)
        await sim.settle()
        sim.run_all("/web")
        await sim.settle()
        sim.master.services.scale("/web", 3)
        await sim.settle()
        assert sim.master.services.get("/web").config == 1
        assert sim.agents["a"].killed() == []

    run(go)


def test_a_failed_task_is_replaced_after_a_growing_backoff(sim: Sim) -> None:
    async def go() -> None:
        a = await sim.add_agent("a")
        sim.deploy({**WEB, "instances": 1})
        await sim.settle()
        delays = []
        for _ in range(3):
            (task,) = sim.wanted("/web")
            if task.state is TaskState.PENDING:
                assert task.not_before is not None
                sim.clock.t = task.not_before
                await sim.settle()
            (task,) = sim.wanted("/web")
            a.report(task.id, TaskState.RUNNING)
            a.report(task.id, TaskState.FAILED)
            await sim.settle()
            (replacement,) = sim.wanted("/web")
            assert replacement.state is TaskState.PENDING
            assert replacement.not_before is not None
            delays.append(round(replacement.not_before - sim.clock.now(), 4))
        assert delays == [1.0, 1.15, 1.3225]
        view = sim.store.service("/web")
        assert view is not None and view["last_failure"]["state"] == "FAILED"

    run(go)


def test_a_task_that_ran_for_long_starts_a_new_backoff_streak(sim: Sim) -> None:
    async def go() -> None:
        a = await sim.add_agent("a")
        sim.deploy({**WEB, "instances": 1})
        await sim.settle()
        sim.master.services.get("/web").failures = 7
        (task,) = sim.wanted("/web")
        a.report(task.id, TaskState.RUNNING)
        sim.clock.t += 3600
        a.report(task.id, TaskState.FAILED)
        await sim.settle()
        (replacement,) = sim.wanted("/web")
        assert replacement.not_before == sim.clock.now() + 1.0

    run(go)


def test_a_rolling_upgrade_stops_old_tasks_only_as_new_ones_become_healthy(sim: Sim) -> None:
    async def go() -> None:
        a = await sim.add_agent("a")
        sim.deploy(CHECKED)
        await sim.settle()
        sim.run_all("/web", healthy=True)
        await sim.settle()
        old = {t.id for t in sim.wanted("/web")}
        changed = {**CHECKED, "task": {**CHECKED["task"], "shell": "serve --v2"}}
        dep = sim.deploy(changed)
        await sim.settle()
        new = [t for t in sim.wanted("/web") if t.id not in old]
        assert len(new) == 2 and all(t.run == 2 for t in new)
        assert a.killed() == []  # nothing new is healthy yet
        a.report(new[0].id, TaskState.RUNNING)
        await sim.settle()
        assert a.killed() == []  # running, but not yet healthy
        a.report(new[0].id, TaskState.RUNNING, healthy=True)
        await sim.settle()
        assert len(a.killed()) == 1 and a.killed()[0] in old
        a.report(new[1].id, TaskState.RUNNING)
        a.report(new[1].id, TaskState.RUNNING, healthy=True)
        await sim.settle()
        assert set(a.killed()) == old
        assert deployment_states(sim)[dep] == "SUCCEEDED"

    run(go)


def test_with_half_minimum_health_the_upgrade_stops_old_tasks_first(sim: Sim) -> None:
    async def go() -> None:
        a = await sim.add_agent("a")
        spec = {
            **WEB,
            "instances": 4,
            "upgrade": {"minimum_health_capacity": 0.5, "maximum_over_capacity": 0},
        }
        sim.deploy(spec)
        await sim.settle()
        sim.run_all("/web")
        await sim.settle()
        sim.deploy({**spec, "task": {**WEB["task"], "shell": "serve --v2"}})
        await sim.settle()
        assert len(a.killed()) == 2  # down to half at once, never over four tasks
        assert len(sim.wanted("/web")) == 4
        sim.confirm_kills()
        sim.run_all("/web")
        await sim.settle()
        sim.confirm_kills()
        sim.run_all("/web")
        await sim.settle()
        assert {t.run for t in sim.wanted("/web")} == {2}
        assert len(sim.wanted("/web")) == 4

    run(go)


def test_another_deployment_of_a_locked_service_is_refused_unless_forced(sim: Sim) -> None:
    async def go() -> None:
        await sim.add_agent("a")
        first = sim.deploy(WEB)
        with pytest.raises(Conflict, match="locked"):
            sim.master.services.scale("/web", 5)
        sim.master.services.scale("/web", 5, force=True)
        assert deployment_states(sim)[first] == "CANCELLED"

    run(go)


def test_cancelling_a_deployment_rolls_the_service_back(sim: Sim) -> None:
    async def go() -> None:
        await sim.add_agent("a")
        sim.deploy(CHECKED)
        await sim.settle()
        sim.run_all("/web", healthy=True)
        await sim.settle()
        old = {t.id for t in sim.wanted("/web")}
        dep = sim.deploy({**CHECKED, "task": {**CHECKED["task"], "shell": "broken"}})
        await sim.settle()
        back = sim.master.services.cancel(dep)
        assert back is not None
        await sim.settle()
        rec = sim.master.services.get("/web")
        assert rec.spec.task.shell == "serve" and rec.config == 3
        sim.run_all("/web", healthy=True)
        await sim.settle()
        sim.confirm_kills()
        await sim.settle()
        assert deployment_states(sim) == {
            **deployment_states(sim),
            dep: "CANCELLED",
            back.id: "SUCCEEDED",
        }
        assert len(sim.wanted("/web")) == 2 and not old & {t.id for t in sim.wanted("/web")}

    run(go)


def test_a_forced_cancel_keeps_the_new_spec_and_rolls_nothing_back(sim: Sim) -> None:
    async def go() -> None:
        a = await sim.add_agent("a")
        sim.deploy(CHECKED)
        await sim.settle()
        sim.run_all("/web", healthy=True)
        await sim.settle()
        dep = sim.deploy({**CHECKED, "task": {**CHECKED["task"], "shell": "v2"}})
        await sim.settle()
        old = [t.id for t in sim.wanted("/web") if t.run == 1]
        assert sim.master.services.cancel(dep, force=True) is None
        await sim.settle()
        # No rollback: the new spec stays, and the extra tasks that are not ready yet (the
        # new ones) go, as a scale down would choose them.
        assert sim.master.services.get("/web").spec.task.shell == "v2"
        assert [t.id for t in sim.wanted("/web")] == old
        assert len(a.killed()) == 2 and not set(a.killed()) & set(old)
        assert deployment_states(sim)[dep] == "CANCELLED"
        assert len(deployment_states(sim)) == 2

    run(go)


def test_deleting_a_service_stops_its_tasks_and_forgets_it(sim: Sim) -> None:
    async def go() -> None:
        a = await sim.add_agent("a")
        sim.deploy(WEB)
        await sim.settle()
        sim.run_all("/web")
        await sim.settle()
        dep = sim.master.services.delete("/web")
        await sim.settle()
        assert len(a.killed()) == 2
        assert sim.store.service("/web") is None
        assert deployment_states(sim)[dep.id] == "RUNNING"
        sim.confirm_kills()
        await sim.settle()
        assert deployment_states(sim)[dep.id] == "SUCCEEDED"
        assert sim.store.tasks(job="/web") == []

    run(go)


def test_tasks_of_a_lost_agent_are_replaced_elsewhere_without_backoff(sim: Sim) -> None:
    async def go() -> None:
        a, b = await sim.add_agent("a"), await sim.add_agent("b")
        sim.deploy({**WEB, "constraints": [["hostname", "UNIQUE"]]})
        await sim.settle()
        sim.run_all("/web")
        await sim.settle()
        c = await sim.add_agent("c")
        a.disconnect()
        with sim.master.state.change() as ch:
            sim.master.applier.apply(ch, [MarkLost("a", "silent")], sim.clock.now())
        await sim.settle()
        assert len(c.launched()) == 1
        (replacement,) = [t for t in sim.wanted("/web") if t.agent_id == "c"]
        assert replacement.not_before is None
        assert len(b.launched()) == 1

    run(go)


def test_a_unique_service_with_more_instances_than_hosts_says_why_one_waits(sim: Sim) -> None:
    async def go() -> None:
        await sim.add_agent("a")
        await sim.add_agent("b")
        sim.deploy({**WEB, "instances": 3, "constraints": [["hostname", "UNIQUE"]]})
        await sim.settle()
        waiting = [t for t in sim.wanted("/web") if t.state is TaskState.PENDING]
        assert len(waiting) == 1 and "UNIQUE" in waiting[0].waiting

    run(go)


def test_a_service_waits_for_the_services_it_depends_on(sim: Sim) -> None:
    async def go() -> None:
        a = await sim.add_agent("a")
        db = ServiceSpec.model_validate({**WEB, "id": "/lab/db", "instances": 1})
        web = ServiceSpec.model_validate({**WEB, "id": "/lab/web", "dependencies": ["/lab/db"]})
        dep = sim.master.services.deploy([web, db], "ann")
        assert [[x["app"] for x in step] for step in dep.steps] == [["/lab/db"], ["/lab/web"]]
        await sim.settle()
        assert len(a.launched()) == 1 and sim.live("/lab/web") == []
        sim.run_all("/lab/db")
        await sim.settle()
        assert len(sim.live("/lab/web")) == 2

    run(go)


def test_health_reports_are_kept_per_task_and_counted(sim: Sim) -> None:
    async def go() -> None:
        a = await sim.add_agent("a")
        sim.deploy(CHECKED)
        await sim.settle()
        sim.run_all("/web")
        t1, t2 = sim.wanted("/web")
        a.report(t1.id, TaskState.RUNNING, healthy=True)
        a.report(t2.id, TaskState.RUNNING, healthy=False)
        row = sim.store.task(t2.id)
        assert row is not None and row["healthy"] is False and row["health"] == "HTTP 500"
        assert (t1.healthy, t2.healthy) == (True, False)
        events = [e for e in sim.store.events_since(0) if e["type"] == "task_health"]
        assert [(e["task_id"], e["data"]["healthy"]) for e in events] == [
            (t1.id, True),
            (t2.id, False),
        ]

    run(go)


def test_tasks_stopped_with_their_agent_are_no_failure(sim: Sim) -> None:
    async def go() -> None:
        a = await sim.add_agent("a")
        sim.deploy({**WEB, "instances": 1})
        await sim.settle()
        (task,) = sim.wanted("/web")
        a.report(task.id, TaskState.RUNNING)
        agent = sim.master.state.agents["a"]
        update = StatusUpdate(
            seq=next(a.seq),
            task_id=task.id,
            state=TaskState.KILLED,
            time=sim.clock.now(),
            reason=f"{AGENT_SHUTDOWN} (killed (SIGTERM))",
        )
        sim.master.agents.apply_updates(agent, [update])
        await sim.settle()
        rec = sim.master.services.get("/web")
        assert rec.failures == 0 and rec.delay_until is None
        row = sim.store.service("/web")
        assert row is not None and row["last_failure"] is None
        (replacement,) = sim.wanted("/web")
        assert replacement.not_before is None

    run(go)


def test_a_restarted_master_takes_services_and_deployments_up_where_they_were(
    sim: Sim,
) -> None:
    async def go() -> None:
        await sim.add_agent("a")
        sim.deploy(CHECKED)
        await sim.settle()
        sim.run_all("/web", healthy=True)
        await sim.settle()
        dep = sim.deploy({**CHECKED, "task": {**CHECKED["task"], "shell": "v2"}})
        await sim.settle()
        before = {t.id: t.run for t in sim.wanted("/web")}
        assert sorted(before.values()) == [1, 1, 2, 2]

        again = Master(sim.store, sim.clock)
        again.agents.load()
        again.state.load()
        again.services.load()
        await again.service_loop.run_once()
        assert again.services.get("/web").config == 2
        assert list(again.services.deployments) == [dep]
        live = {t.id: t.run for t in again.state.tasks.values() if not t.kill_requested}
        assert live == before  # nothing started twice, nothing stopped early

    run(go)


def test_the_events_of_a_deployment_of_one_service_are_filed_under_it(sim: Sim) -> None:
    async def go() -> None:
        await sim.add_agent("a")
        sim.deploy(WEB)
        await sim.settle()
        sim.run_all("/web")
        await sim.settle()
        db = ServiceSpec.model_validate({**WEB, "id": "/db"})
        web = ServiceSpec.model_validate({**WEB, "instances": 3})
        sim.master.services.deploy([db, web], "ann", force=True)
        kinds = [
            (e["type"], e["job"])
            for e in sim.store.events_since(0)
            if e["type"].startswith("deploy")
        ]
        assert kinds[:3] == [
            ("deployment_started", "/web"),
            ("deployment_step", "/web"),
            ("deployment_finished", "/web"),
        ]
        assert kinds[3] == ("deployment_started", None)  # two services: under neither

    run(go)
