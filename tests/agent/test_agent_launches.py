"""An agent says it takes ``launches`` and starts every launch of one, in order; a launch in it
that it cannot read is reported ERROR and the others still start. A ``launch`` alone (from a
master of an earlier version) still starts its task."""

import asyncio
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection

from corral.spec.protocol import Ack, Launch, Launches, Welcome
from tests.agent.helpers import DEADLINE, agent_of_scripted_master, launch

# The agent under test has no executor: each launch it reads is answered ERROR with this
# reason, which tells a launch it read from one it could not.
NO_DRIVER = "driver 'process' is not available on node-test"


def run_master(tmp_path: Path, messages: list[str], expected: int) -> tuple[Any, list[Any]]:
    """Send ``messages`` to a new agent once it is welcomed; answer its hello and the first
    ``expected`` status updates it sends, as (task id, state, reason)."""

    async def scenario() -> tuple[Any, list[Any]]:
        hello: dict[str, Any] = {}
        updates: list[Any] = []
        done = asyncio.Event()

        async def master(ws: ServerConnection) -> None:
            hello.update(json.loads(await asyncio.wait_for(ws.recv(), DEADLINE)))
            welcome = Welcome(agent_id=hello["agent_id"], heartbeat_interval=30)
            await ws.send(welcome.model_dump_json())
            for message in messages:
                await ws.send(message)
            while len(updates) < expected:
                msg = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
                if msg["type"] == "updates":
                    updates.extend((u["task_id"], u["state"], u["reason"]) for u in msg["updates"])
                    await ws.send(Ack(seq=msg["updates"][-1]["seq"]).model_dump_json())
            done.set()
            await ws.wait_closed()

        async with agent_of_scripted_master(master, tmp_path):
            await asyncio.wait_for(done.wait(), DEADLINE)
        return hello, updates

    return asyncio.run(scenario())


def test_every_launch_of_a_launches_message_is_started_in_order(tmp_path: Path) -> None:
    tasks = [launch() for _ in range(3)]
    hello, updates = run_master(tmp_path, [Launches(tasks=tasks).model_dump_json()], 3)
    assert hello["batched_launches"] is True
    assert updates == [(t.task_id, "ERROR", NO_DRIVER) for t in tasks]


def test_a_launch_it_cannot_read_is_reported_and_the_others_start(tmp_path: Path) -> None:
    good = [launch(), launch()]
    bad = launch().model_dump(mode="json")
    bad["cpus"] = "lots"
    tasks = [good[0].model_dump(mode="json"), bad, good[1].model_dump(mode="json")]
    message = json.dumps({"type": "launches", "tasks": tasks})
    _, updates = run_master(tmp_path, [message], 3)
    assert updates[0] == (good[0].task_id, "ERROR", NO_DRIVER)
    assert updates[1][:2] == (bad["task_id"], "ERROR")
    assert updates[1][2].startswith("unreadable launch: ")
    assert updates[2] == (good[1].task_id, "ERROR", NO_DRIVER)


def test_a_single_launch_still_starts_its_task(tmp_path: Path) -> None:
    task = launch()
    _, updates = run_master(tmp_path, [Launch(task=task).model_dump_json()], 1)
    assert updates == [(task.task_id, "ERROR", NO_DRIVER)]
