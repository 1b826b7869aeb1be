"""A master with simulated agents behind the Marathon API, for tests of what Marathon's
clients see of running tasks: the agent reports only what the test tells it to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.api.app import create_app
from corral.api.marathon_events import marathon_events
from corral.spec.protocol import StatusUpdate
from corral.spec.states import TaskState
from tests.master.sim import Sim

__all__ = ["APP", "client", "marathon_stream", "report", "running_app", "settle", "sim"]

APP: dict[str, Any] = {
    "id": "/lab/portal",
    "cmd": "python3 -m http.server $PORT0",
    "instances": 1,
    "cpus": 0.25,
    "mem": 64,
    "portDefinitions": [{"port": 0, "name": "http"}, {"port": 0, "name": "admin"}],
}


@pytest.fixture
def sim(store_url: str) -> Iterator[Sim]:
    s = Sim(store_url)
    asyncio.run(s.add_agent("node1"))
    yield s
    s.close()


@pytest.fixture
def client(sim: Sim, tmp_path: Path) -> Iterator[TestClient]:
    token = sim.master.ensure_admin_token(tmp_path / "admin.token")
    with TestClient(create_app(sim.master), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def settle(sim: Sim) -> None:
    asyncio.run(sim.settle())


def report(sim: Sim, task_id: str, state: TaskState, **fields: Any) -> None:
    """The agent running ``task_id`` reports ``state`` (with ports, a reason...)."""
    task = sim.master.state.tasks[task_id]
    agent = sim.master.state.agents[task.agent_id or ""]
    seq = next(sim.agents[agent.id].seq)
    update = StatusUpdate(seq=seq, task_id=task_id, state=state, time=sim.clock.now(), **fields)
    sim.master.agents.apply_updates(agent, [update])


def running_app(sim: Sim, client: TestClient, doc: dict[str, Any] = APP) -> str:
    """Post ``doc`` and run its one task on node1 with host ports 31000 and 31001."""
    assert client.post("/v2/apps?force=true", json=doc).status_code == 201
    settle(sim)
    (task,) = sim.live(doc["id"])
    report(sim, task.id, TaskState.RUNNING, ports=[31000, 31001])
    settle(sim)
    return task.id


def marathon_stream(sim: Sim) -> list[dict[str, Any]]:
    """Every stored event as the Marathon events /v2/events sends for it."""
    out = []
    for ev in sim.store.events_since(0):
        out += marathon_events(sim.master, dict(ev))
    return out
