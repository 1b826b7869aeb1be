"""Gang jobs in the master: a run's ranks are placed whole on distinct agents, launched in one
pass with the hosts of every node, or wait whole with their reason."""

from __future__ import annotations

import asyncio
from typing import Any

from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from tests.master.sim import Sim


def gang(nodes: int, tasks_per_node: int = 1, **extra: Any) -> JobSpec:
    task = {"shell": "mpirun ./a.out", "cpus": 1, "mem": 64}
    return JobSpec.model_validate(
        {"name": "mpi", "nodes": nodes, "tasks_per_node": tasks_per_node, "task": task, **extra}
    )


def launches(sim: Sim) -> dict[str, dict[str, Any]]:
    """Every launch sent, by task id."""
    return {
        m["task"]["task_id"]: m["task"]
        for agent in sim.agents.values()
        for m in agent.sent
        if m["type"] == "launch"
    }


def test_each_node_s_ranks_go_to_one_agent_and_every_launch_lists_the_nodes_hosts(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        for name in ("a1", "a2", "a3"):
            await sim.add_agent(name, cpus=2)
        sim.master.jobs.submit(gang(3, 2), "alice")
        await sim.settle()
        sent = launches(sim)
        assert sorted(sent) == [f"mpi.1.{r}.0" for r in range(6)]
        node_host = {r: sim.master.state.tasks[f"mpi.1.{r}.0"].agent_id or "" for r in range(6)}
        hosts = [node_host[0], node_host[2], node_host[4]]
        assert sorted(hosts) == ["a1", "a2", "a3"]  # a node per agent
        for rank in range(6):
            assert node_host[rank] == hosts[rank // 2]
            member = sent[f"mpi.1.{rank}.0"]["gang"]
            assert (member["rank"], member["nodes"], member["tasks_per_node"]) == (rank, 3, 2)
            assert member["hosts"] == hosts

    asyncio.run(scenario())


def test_a_gang_of_4_on_room_for_3_waits_whole_then_starts_when_a_fourth_slot_frees(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        for name in ("a1", "a2", "a3", "a4"):
            await sim.add_agent(name, cpus=1)
        blocker = {"name": "blocker", "task": {"shell": "sleep 60", "cpus": 1, "mem": 64}}
        sim.master.jobs.submit(JobSpec.model_validate(blocker), "alice")
        await sim.settle()
        busy = sim.master.state.tasks["blocker.1.0.0"].agent_id or ""
        sim.master.jobs.submit(gang(4), "alice")
        await sim.settle()
        assert sorted(launches(sim)) == ["blocker.1.0.0"]
        waiting = {t.waiting for t in sim.master.state.tasks.values() if t.job == "mpi"}
        assert waiting == {"gang of 4 nodes: 3 fit (1 insufficient cpus)"}
        sim.agents[busy].report("blocker.1.0.0", TaskState.RUNNING)
        sim.agents[busy].report("blocker.1.0.0", TaskState.FINISHED)
        await sim.settle()
        assert sorted(launches(sim)) == ["blocker.1.0.0"] + [f"mpi.1.{r}.0" for r in range(4)]
        ranks = [t for t in sim.master.state.tasks.values() if t.job == "mpi"]
        assert {t.state for t in ranks} == {TaskState.STAGING}
        assert sorted(t.agent_id or "" for t in ranks) == ["a1", "a2", "a3", "a4"]

    asyncio.run(scenario())
