"""A batch job's container asking for a fixed host port is placed like a service's: never two
tasks with that port on one node (the port is read from the task's launch, in one place)."""

from __future__ import annotations

import asyncio

from corral.spec.jobs import JobSpec
from tests.master.sim import Sim

FIXED_PORT = {
    "name": "web-sweep",
    "array": "0-1",
    "task": {
        "cpus": 0.1,
        "mem": 32,
        "docker": {"image": "web", "portMappings": [{"containerPort": 80, "hostPort": 18480}]},
    },
}


def test_two_array_tasks_asking_for_one_host_port_go_to_two_agents(sim: Sim) -> None:
    async def scenario() -> None:
        await sim.add_agent("a1", drivers=["process", "docker"])
        await sim.add_agent("a2", drivers=["process", "docker"])
        sim.master.jobs.submit(JobSpec.model_validate(FIXED_PORT), "alice")
        await sim.settle()
        agents = sorted(t.agent_id or "" for t in sim.master.state.tasks.values())
        assert agents == ["a1", "a2"]

    asyncio.run(scenario())


def test_the_second_task_waits_for_the_port_when_one_agent_has_it(sim: Sim) -> None:
    async def scenario() -> None:
        await sim.add_agent("a1", drivers=["process", "docker"])
        sim.master.jobs.submit(JobSpec.model_validate(FIXED_PORT), "alice")
        await sim.settle()
        tasks = sorted(sim.master.state.tasks.values(), key=lambda t: t.id)
        assert [t.agent_id for t in tasks] == ["a1", None]
        assert "host port in use" in tasks[1].waiting

    asyncio.run(scenario())
