"""A WebSocket whose work the store refuses is closed with a code its client acts on, never
answered with an HTTP error on an open WebSocket (which the server cannot send: a traceback in
the master's log, and an agent left to guess).

The moment tested: a leader that has just stepped down (its store writes no more) while calls
still reach its routes, as when PostgreSQL went away under it and came back with another lease.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from corral.api.app import create_app
from corral.master.master import Master
from corral.spec.protocol import NOT_LEADER, AgentResources, Hello
from tests.support.postgres import PostgresServer

HELLO = Hello(
    agent_id="a-1", hostname="n1", resources=AgentResources(cpus=2, mem=1024, disk=0)
).model_dump_json()


def test_an_agent_greeting_a_master_that_stepped_down_is_sent_to_dial_the_leader(
    master: Master, api: TestClient
) -> None:
    master.store.resign()  # fenced: every write transaction is refused from now on
    with api.websocket_connect("/api/v1/agent/channel") as ws:
        ws.send_text(HELLO)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == NOT_LEADER
    # This master is the only one it knows of, and leads no more: no leader to name.
    assert closed.value.reason == ""
    assert "a-1" not in master.state.agents


# Stopping a database server under the master: on PostgreSQL only.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_an_exec_asked_while_the_database_is_down_is_closed_as_try_again_later(
    master: Master, postgres: PostgresServer
) -> None:
    with TestClient(create_app(master, auth_required=False)) as api:
        postgres.stop("fast")
        try:
            # Who may exec into a task is its owner's: the store cannot say.
            with pytest.raises(WebSocketDisconnect) as closed:
                with api.websocket_connect("/api/v1/tasks/gone.1.0.0/exec") as ws:
                    ws.send_text(json.dumps({"command": ["true"]}))
                    ws.receive_text()
        finally:
            postgres.start()
    assert closed.value.code == 1013  # not 4403: nothing was refused, it may be asked again
    assert "state store is unavailable" in (closed.value.reason or "")
