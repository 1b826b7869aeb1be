"""GPUs through the master: agents offer indexed GPUs, a placed task holds specific indices,
its launch names them, they come back when it ends, and a restarted master knows who holds
which (the indices are stored with the placement)."""

from __future__ import annotations

import asyncio

from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from tests.master.sim import Sim, SimAgent


def gpu_job(name: str, gpus: int = 1) -> JobSpec:
    return JobSpec.model_validate(
        {"name": name, "task": {"shell": "train", "cpus": 0.1, "gpus": gpus}}
    )


def given(agent: SimAgent) -> dict[str, list[int]]:
    """Task id -> the GPU indices its launch named, for every launch the agent was sent."""
    return {t["task_id"]: t["gpu_devices"] for t in agent.launches()}


def test_gpu_tasks_get_distinct_indices_and_a_fourth_waits_until_one_ends(sim: Sim) -> None:
    async def scenario() -> None:
        two = await sim.add_agent("two", gpus=2)
        one = await sim.add_agent("one", gpus=1)
        for name in ("j1", "j2", "j3", "j4"):
            sim.master.jobs.submit(gpu_job(name), "alice")
        await sim.settle()
        pairs = sorted((a.name, i) for a in (two, one) for ids in given(a).values() for i in ids)
        assert pairs == [("one", 0), ("two", 0), ("two", 1)]
        waiting = [t for t in sim.master.state.tasks.values() if t.state is TaskState.PENDING]
        assert [t.waiting for t in waiting] == ["0/2 agents fit: 2 insufficient gpus"]

        (freed_task, freed) = next(iter(given(two).items()))
        two.report(freed_task, TaskState.FINISHED)
        await sim.settle()
        assert given(two)[waiting[0].id] == freed
        held = sorted(d for t in sim.master.state.tasks.values() for d in t.devices)
        assert held == [0, 0, 1]

    asyncio.run(scenario())


def test_a_restarted_master_knows_which_indices_are_held(store_url: str) -> None:
    async def scenario() -> None:
        sim = Sim(store_url)
        await sim.add_agent("node", gpus=2)
        sim.master.jobs.submit(gpu_job("first"), "alice")
        await sim.settle()
        [first] = sim.master.state.tasks.values()
        assert first.devices == (0,)
        sim.close()

        again = Sim(store_url)  # a new master on the same store
        assert again.master.state.tasks[first.id].devices == (0,)
        assert [g.index for g in again.master.state.agents["node"].gpus] == [0, 1]
        node = await again.add_agent("node", gpus=2)  # reconnects: STAGING launches go again
        again.master.jobs.submit(gpu_job("second"), "alice")
        await again.settle()
        assert given(node) == {first.id: [0], "second.1.0.0": [1]}
        again.close()

    asyncio.run(scenario())


def test_a_task_asking_for_no_gpu_runs_beside_gpu_tasks_and_is_given_none(sim: Sim) -> None:
    async def scenario() -> None:
        node = await sim.add_agent("node", gpus=1)
        sim.master.jobs.submit(gpu_job("gpu"), "alice")
        sim.master.jobs.submit(gpu_job("cpu", gpus=0), "alice")
        await sim.settle()
        assert given(node) == {"gpu.1.0.0": [0], "cpu.1.0.0": []}

    asyncio.run(scenario())
