"""Launches leave in one message per agent per plan (``launches``), cut where they grow large;
an agent of an earlier version, which does not say it takes them, gets a ``launch`` per task."""

from __future__ import annotations

import asyncio

import pytest

from corral.master import agents
from corral.spec.jobs import JobSpec
from corral.spec.protocol import Launches
from tests.master.sim import Sim


def submit(sim: Sim, name: str, tasks: int, **task: object) -> None:
    spec = JobSpec.model_validate(
        {"name": name, "array": f"0-{tasks - 1}", "task": {"shell": "true", "cpus": 1, **task}}
    )
    sim.master.jobs.submit(spec, "alice")


def test_a_plan_sends_each_agent_its_launches_in_one_message(sim: Sim) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1", cpus=4)
        a2 = await sim.add_agent("a2", cpus=4)
        submit(sim, "sweep", 8, env={"STAGE": "one"})
        await sim.settle()
        for agent in (a1, a2):
            assert [m["type"] for m in agent.sent] == ["welcome", "launches"]
            message = Launches.model_validate(agent.sent[1])
            assert len(message.tasks) == 4
            for launch in message.tasks:
                # What the task's stored launch says, as the agent reads it.
                assert launch == sim.master.state.tasks[launch.task_id].launch
                assert launch.env["STAGE"] == "one"
        assert sorted(a1.launched() + a2.launched()) == [f"sweep.1.{i}.0" for i in range(8)]

    asyncio.run(scenario())


def test_an_agent_of_an_earlier_version_is_sent_a_launch_per_task(sim: Sim) -> None:
    async def scenario() -> None:
        old = await sim.add_agent("old", cpus=4, batched_launches=False)
        submit(sim, "sweep", 3)
        await sim.settle()
        assert [m["type"] for m in old.sent] == ["welcome", "launch", "launch", "launch"]
        assert sorted(old.launched()) == [f"sweep.1.{i}.0" for i in range(3)]

    asyncio.run(scenario())


def test_launches_are_cut_where_their_json_would_pass_the_limit(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1", cpus=8)
        submit(sim, "big", 5, env={"BLOB": "x" * 10_000})
        one = len(next(iter(sim.master.state.tasks.values())).row.launch.json)
        monkeypatch.setattr(agents, "LAUNCHES_BYTES", int(one * 2.5))
        await sim.settle()
        sizes = [len(m["tasks"]) for m in a1.sent if m["type"] == "launches"]
        assert sizes == [2, 2, 1]
        assert sorted(a1.launched()) == [f"big.1.{i}.0" for i in range(5)]

    asyncio.run(scenario())


def test_staging_tasks_an_agent_lost_are_sent_again_together_when_it_registers(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1", cpus=4)
        submit(sim, "sweep", 3)
        await sim.settle()
        a1.disconnect()
        a1.sent.clear()
        await a1.connect(running=[])  # it never got them: STAGING, safe to send again
        assert [m["type"] for m in a1.sent] == ["welcome", "launches"]
        assert sorted(a1.launched()) == [f"sweep.1.{i}.0" for i in range(3)]

    asyncio.run(scenario())
