"""What the API, the CLI, the dashboard and the metrics show of GPUs: each agent's GPUs by index
with the task holding each, a task's GPUs, the used/free figures of ``corral agents``, and the
cluster's GPUs used of total."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from corral.cli.views import AGENT_COLUMNS
from corral.spec.jobs import JobSpec
from corral.spec.views import AgentView, TaskView
from tests.marathon.simulated import client
from tests.master.sim import Sim

__all__ = ["client"]  # the app over ``sim``, below


@pytest.fixture
def sim(store_url: str) -> Iterator[Sim]:
    """A master whose agent "node" has 2 GPUs, one held by task ``train.1.0.0``; and a CPU-only
    agent "cpu"."""
    sim = Sim(store_url)

    async def arrange() -> None:
        await sim.add_agent("node", gpus=2)
        await sim.add_agent("cpu")
        spec = {"name": "train", "task": {"shell": "train", "cpus": 0.1, "gpus": 1}}
        sim.master.jobs.submit(JobSpec.model_validate(spec), "alice")
        await sim.settle()

    asyncio.run(arrange())
    yield sim
    sim.close()


@pytest.fixture
def api(client: TestClient) -> TestClient:
    """The app, signed in the API's way and the dashboard's (the token cookie)."""
    client.cookies.set("corral_token", client.headers["Authorization"].removeprefix("Bearer "))
    return client


def agents(api: TestClient) -> dict[str, AgentView]:
    views = [AgentView.model_validate(a) for a in api.get("/api/v1/agents").json()]
    return {a.hostname: a for a in views}


def test_the_agent_view_lists_each_gpu_with_the_task_holding_it(api: TestClient) -> None:
    node = agents(api)["node"]
    assert [(g.index, g.model, g.task) for g in node.gpus] == [
        (0, "declared", "train.1.0.0"),
        (1, "declared", None),
    ]
    assert (node.used.gpus, node.total.gpus) == (1, 2)
    assert agents(api)["cpu"].gpus == []


def test_a_task_view_says_how_many_gpus_it_asked_for_and_which_it_got(api: TestClient) -> None:
    task = TaskView.model_validate(api.get("/api/v1/tasks/train.1.0.0").json())
    assert (task.resources.gpus, task.gpus) == (1, [0])


def test_corral_agents_shows_gpus_used_of_total_and_the_free_indices(api: TestClient) -> None:
    [gpus] = [c for c in AGENT_COLUMNS if c.header == "GPUS"]
    shown = {name: gpus.cell(view) for name, view in agents(api).items()}
    assert shown == {"node": "1/2 free 1", "cpu": "-"}


def test_the_dashboards_agents_page_shows_each_gpu_free_or_held(api: TestClient) -> None:
    page = api.get("/ui/agents")
    assert page.status_code == 200, page.text
    assert 'data-gpu="0" data-free="no"' in page.text
    assert 'href="/ui/tasks/train.1.0.0"' in page.text
    assert 'data-gpu="1" data-free="yes"' in page.text


def test_metrics_count_the_gpus_of_connected_agents_total_and_used(api: TestClient) -> None:
    text = api.get("/metrics").text
    assert 'corral_gpus{kind="total"} 2.0' in text
    assert 'corral_gpus{kind="used"} 1.0' in text
