"""The agent channel endpoint: one WebSocket per agent, JSON messages from
``corral.spec.protocol``."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from corral.api.leader import close_refused
from corral.master.master import Master
from corral.master.records import AgentRecord, AgentSession
from corral.spec.execs import ExecCancel, ExecExit, ExecOutput, RshOpen
from corral.spec.protocol import (
    Ack,
    AgentMessage,
    FileList,
    Heartbeat,
    Hello,
    ReadResult,
    Updates,
    agent_message,
)
from corral.store.store import Fenced, StoreFull, StoreUnavailable

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1")


@router.websocket("/agent/channel")
async def agent_channel(ws: WebSocket) -> None:
    """Register the agent, then handle its messages until the connection ends."""
    master: Master = ws.app.state.master  # an agent token: its rule in corral.api.authz
    await ws.accept()

    async def send(message: dict[str, Any]) -> None:
        # orjson, not send_json's json.dumps: a message of launches is most of what the master
        # writes per task.
        await ws.send_text(orjson.dumps(message).decode())

    async def hangup() -> None:
        # It may be closing already, or gone.
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await ws.close(code=4408, reason="the master gave up on this connection")

    session = AgentSession(send, hangup)
    agent: AgentRecord | None = None
    try:
        first = agent_message.validate_json(await ws.receive_text())
        if not isinstance(first, Hello):
            await ws.close(code=4400, reason="the first message must be hello")
            return
        agent = await master.agents.hello(first, session)
        # A session the master closed (the agent fell silent) hears nothing more: the agent
        # must dial again and be reconciled, not carry on where the master gave it up.
        while not session.closed:
            raw = await _receive(ws)
            if raw is None or session.closed:
                break
            await _handle(master, agent, session, agent_message.validate_json(raw))
    except WebSocketDisconnect:
        pass
    except ValidationError as e:
        log.warning("agent sent an invalid message: %s", e)
        await ws.close(code=4400, reason="invalid message")
    except (StoreUnavailable, StoreFull, Fenced) as e:
        # Nothing of the message was stored, nor acked: the agent dials again (the leader, if
        # this master stepped down) and replays its journal there.
        who = agent.hostname if agent is not None else "an agent"
        log.warning("the report of %s was not stored; it is asked to dial again: %s", who, e)
        await close_refused(ws, e)
    finally:
        if agent is not None:
            master.execs.agent_gone(agent.id)
            # A master that stepped down records nothing: the leader has the agent now.
            with contextlib.suppress(Fenced):
                await master.agents.hung_up(agent, session)
        else:
            session.close()


async def _receive(ws: WebSocket) -> str | None:
    """The next message, or None once the connection is closed (by either end)."""
    try:
        return await ws.receive_text()
    except WebSocketDisconnect:
        return None
    except RuntimeError:  # Starlette's answer to a receive after the master hung up
        return None


async def _handle(
    master: Master,
    agent: AgentRecord,
    session: AgentSession,
    msg: AgentMessage,
) -> None:
    if isinstance(msg, Updates):
        await master.agents.report(agent, msg.updates)
        # Acks are cumulative and updates arrive in order, so a duplicate is acked too.
        await session.send(Ack(seq=agent.last_seq).model_dump())
    elif isinstance(msg, Heartbeat):
        master.agents.heartbeat(agent, session)
    elif isinstance(msg, ReadResult | FileList):
        session.answer_read(msg.model_dump())
    elif isinstance(msg, ExecOutput):
        master.execs.output(agent.id, msg)
    elif isinstance(msg, ExecExit):
        master.execs.exited(agent.id, msg)
    elif isinstance(msg, RshOpen):
        await master.execs.rsh_open(agent.id, msg)
    elif isinstance(msg, ExecCancel):
        await master.execs.rsh_cancel(agent.id, msg)
    else:
        log.warning("agent %s said hello twice; ignored", agent.hostname)
