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
    return {t["task_id"]: t for agent in sim.agents.values() for t in agent.launches()}


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


async def running_gang(sim: Sim, nodes: int, **extra: Any) -> list[str]:
    """Agents a1..aN, a gang of ``nodes`` submitted and every rank RUNNING; its task ids."""
    for i in range(1, nodes + 1):
        await sim.add_agent(f"a{i}", cpus=1)
    sim.master.jobs.submit(gang(nodes, **extra), "alice")
    await sim.settle()
    ids = sorted(t.id for t in sim.master.state.tasks.values() if t.job == "mpi")
    for tid in ids:
        report(sim, tid, TaskState.RUNNING)
    return ids


def report(sim: Sim, task_id: str, state: TaskState) -> None:
    """The task's agent reports ``state`` for it."""
    task = sim.master.state.tasks[task_id]
    sim.agents[task.agent_id or ""].report(task_id, state)


def kills(sim: Sim) -> dict[str, dict[str, Any]]:
    """Every kill sent, by task id."""
    return {
        m["task_id"]: m for agent in sim.agents.values() for m in agent.sent if m["type"] == "kill"
    }


def test_when_rank_0_finishes_the_waiting_ranks_finish_and_the_run_succeeds(sim: Sim) -> None:
    async def scenario() -> None:
        ids = await running_gang(sim, 3)
        report(sim, ids[0], TaskState.FINISHED)
        await sim.settle()
        sent = kills(sim)
        assert sorted(sent) == ids[1:]
        assert all(
            k["finish"] and k["reason"] == "gang mpi.1 done: rank 0 finished" for k in sent.values()
        )
        for tid in ids[1:]:
            report(sim, tid, TaskState.FINISHED)
        assert sim.master.store.runs("mpi", 1)[0]["state"] == "SUCCEEDED"

    asyncio.run(scenario())


def test_a_failed_rank_stops_the_gang_and_retries_every_rank_after_the_backoff(sim: Sim) -> None:
    async def scenario() -> None:
        ids = await running_gang(sim, 3, retries=1, retry_backoff=5)
        report(sim, ids[2], TaskState.FAILED)
        await sim.settle()
        sent = kills(sim)
        assert sorted(sent) == ids[:2]
        assert all(
            not k["finish"] and k["reason"] == "gang mpi.1 stopped: rank 2 FAILED"
            for k in sent.values()
        )
        retries = sorted(t.id for t in sim.master.state.tasks.values() if t.attempt == 1)
        assert retries == ["mpi.1.0.1", "mpi.1.1.1", "mpi.1.2.1"]
        # mpirun's own failure as its daemon dies changes nothing more: no second retry.
        report(sim, ids[0], TaskState.FAILED)
        report(sim, ids[1], TaskState.KILLED)
        await sim.settle()
        assert sorted(t.id for t in sim.master.state.tasks.values()) == retries
        assert {t.state for t in sim.master.state.tasks.values()} == {TaskState.PENDING}
        sim.clock.t += 5
        await sim.settle()
        assert {t.state for t in sim.master.state.tasks.values()} == {TaskState.STAGING}
        for tid in retries:
            report(sim, tid, TaskState.RUNNING)
        report(sim, retries[0], TaskState.FINISHED)
        await sim.settle()
        for tid in retries[1:]:
            report(sim, tid, TaskState.FINISHED)
        assert sim.master.store.runs("mpi", 1)[0]["state"] == "SUCCEEDED"

    asyncio.run(scenario())


def test_a_failure_on_the_last_attempt_fails_the_run_though_the_others_were_killed(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        ids = await running_gang(sim, 3)
        report(sim, ids[1], TaskState.FAILED)
        await sim.settle()
        assert not [t for t in sim.master.state.tasks.values() if t.attempt == 1]
        for tid in (ids[0], ids[2]):
            report(sim, tid, TaskState.KILLED)
        assert sim.master.store.runs("mpi", 1)[0]["state"] == "FAILED"

    asyncio.run(scenario())


def test_a_rank_killed_by_a_user_kills_its_gang_and_nothing_is_retried(sim: Sim) -> None:
    async def scenario() -> None:
        ids = await running_gang(sim, 2, retries=3)
        await sim.master.kill_task(ids[1])
        report(sim, ids[1], TaskState.KILLED)
        await sim.settle()
        assert sorted(kills(sim)) == ids
        report(sim, ids[0], TaskState.KILLED)
        assert not sim.master.state.tasks
        assert sim.master.store.runs("mpi", 1)[0]["state"] == "KILLED"

    asyncio.run(scenario())
