"""An agent sends its status updates one message at a time: those made while the master applies a
message go together once it acknowledged it, so a busy master applies many in one transaction."""

import asyncio
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection

from corral.agent.runtime import Agent
from corral.spec.protocol import Ack, Read, Welcome
from corral.spec.states import TaskState
from tests.agent.helpers import DEADLINE, agent_of_scripted_master


async def _next(ws: ServerConnection, kind: str) -> dict[str, Any]:
    """The next message of type ``kind`` (heartbeats skipped)."""
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
        if msg["type"] == kind:
            return msg


async def _welcome_then_updates(ws: ServerConnection) -> dict[str, Any]:
    """Welcome the agent that says hello; its first message of updates."""
    hello = await _next(ws, "hello")
    welcome = Welcome(agent_id=hello["agent_id"], heartbeat_interval=30)
    await ws.send(welcome.model_dump_json())
    return await _next(ws, "updates")


def test_updates_made_while_one_message_is_unacknowledged_go_together_after_its_ack(
    tmp_path: Path,
) -> None:
    async def scenario() -> list[list[Any]]:
        sent: list[list[Any]] = []
        done = asyncio.Event()
        agent: Agent | None = None

        async def master(ws: ServerConnection) -> None:
            first = await _welcome_then_updates(ws)
            sent.append([u["seq"] for u in first["updates"]])
            assert agent is not None
            # Made while the first message waits for its ack: none of them may be sent yet. The
            # agent answers a read meanwhile: that answer comes first if they were held back.
            for n in range(3):
                await agent.report(f"t{n}", TaskState.RUNNING)
            await ws.send(Read(request_id=1, task_id="t0", file="stdout").model_dump_json())
            following = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
            sent.append([following["type"] == "read_result"])
            await ws.send(Ack(seq=first["updates"][-1]["seq"]).model_dump_json())
            second = await _next(ws, "updates")
            sent.append([u["seq"] for u in second["updates"]])
            await ws.send(Ack(seq=second["updates"][-1]["seq"]).model_dump_json())
            done.set()
            await ws.wait_closed()

        async with agent_of_scripted_master(master, tmp_path) as started:
            agent = started
            await asyncio.wait_for(agent.connected.wait(), DEADLINE)
            await agent.report("first", TaskState.RUNNING)
            await asyncio.wait_for(done.wait(), DEADLINE)
            assert not agent.journal.unacked()
        return sent

    first, read_answered_first, second = asyncio.run(scenario())
    assert first == [1]
    assert read_answered_first == [True]
    assert second == [2, 3, 4]


def _first_updates_after_a_quiet_ack(tmp_path: Path, busy_from: int) -> list[int]:
    """The seqs of the first message of updates after one was acked: two updates are made in
    separate turns (a read answered between them), by an agent busy from ``busy_from`` tasks
    on, whose window between messages is 2 s."""

    async def scenario() -> list[int]:
        seqs: list[int] = []
        done = asyncio.Event()
        agent: Agent | None = None

        async def master(ws: ServerConnection) -> None:
            first = await _welcome_then_updates(ws)
            await ws.send(Ack(seq=first["updates"][-1]["seq"]).model_dump_json())
            await ws.send(Read(request_id=1, task_id="t0", file="stdout").model_dump_json())
            await _next(ws, "read_result")  # the ack was taken in: nothing is in flight
            assert agent is not None
            await agent.report("t0", TaskState.RUNNING)
            await ws.send(Read(request_id=2, task_id="t0", file="stdout").model_dump_json())
            following = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
            if following["type"] == "read_result":  # t0 was held back: t1 goes with it
                await agent.report("t1", TaskState.RUNNING)
                following = await _next(ws, "updates")
            seqs.extend(u["seq"] for u in following["updates"])
            await ws.send(Ack(seq=seqs[-1]).model_dump_json())
            done.set()
            await ws.wait_closed()

        async with agent_of_scripted_master(master, tmp_path) as started:
            agent = started
            agent.coalesce, agent.busy_from = 2.0, busy_from
            await asyncio.wait_for(agent.connected.wait(), DEADLINE)
            await agent.report("first", TaskState.RUNNING)
            await asyncio.wait_for(done.wait(), DEADLINE)
        return seqs

    return asyncio.run(scenario())


def test_a_busy_agent_sends_its_updates_at_most_once_a_window_together(tmp_path: Path) -> None:
    assert _first_updates_after_a_quiet_ack(tmp_path, busy_from=0) == [2, 3]


def test_an_agent_with_few_tasks_sends_each_update_at_once(tmp_path: Path) -> None:
    assert _first_updates_after_a_quiet_ack(tmp_path, busy_from=1000) == [2]
