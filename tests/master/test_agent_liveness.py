"""Agent liveness on the master: silent sessions are closed on both ends, an agent is declared
LOST even if the store refused to record its disconnection, and a frozen master blames nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from corral.master.records import AgentRecord, AgentSession
from corral.spec.states import AgentState
from corral.store.store import Store
from tests.master.sim import Sim


@contextmanager
def refusing_writes(store: Store) -> Iterator[None]:
    """SQLite itself refuses every change of ``agents`` and ``events`` meanwhile, as a full
    disk would."""
    names = []
    with store.engine.begin() as conn:
        for table in ("agents", "events"):
            for op in ("INSERT", "UPDATE"):
                name = f"refuse_{op.lower()}_{table}"
                conn.execute(
                    text(
                        f"CREATE TRIGGER {name} BEFORE {op} ON {table} "
                        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                    )
                )
                names.append(name)
    try:
        yield
    finally:
        with store.engine.begin() as conn:
            for name in names:
                conn.execute(text(f"DROP TRIGGER {name}"))


def state_of(agent: AgentRecord) -> AgentState:
    """The agent's state now (a call, so that the type checker does not pin it)."""
    return agent.state


def test_an_agent_that_drops_while_the_store_refuses_writes_is_lost_once_it_accepts_them(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        sim = Sim(tmp_path)
        await sim.add_agent("a1")
        ops, agent = sim.master.agents, sim.master.state.agents["a1"]
        with refusing_writes(sim.store):
            with pytest.raises(DBAPIError):
                sim.agents["a1"].disconnect()
            sim.clock.t += ops.lost_after + 1
            ops.check_liveness(sim.clock.monotonic())  # logged, not raised
            assert state_of(agent) is AgentState.ACTIVE  # nothing could be recorded
        sim.clock.t += 1
        ops.check_liveness(sim.clock.monotonic())
        assert state_of(agent) is AgentState.LOST
        row = sim.store.agent("a1")
        assert row is not None and row["state"] == "LOST"

    asyncio.run(scenario())


def test_a_silent_session_is_hung_up_and_its_late_heartbeats_count_for_nothing(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        sim = Sim(tmp_path)
        hung_up = asyncio.Event()

        async def hangup() -> None:
            hung_up.set()

        a1 = await sim.add_agent("a1")
        a1.session = AgentSession(a1._receive, hangup)
        await a1.connect_with(a1.session)
        ops, agent = sim.master.agents, sim.master.state.agents["a1"]
        sim.clock.t += ops.disconnect_after + 1
        ops.check_liveness(sim.clock.monotonic())
        await asyncio.wait_for(hung_up.wait(), 5)
        assert state_of(agent) is AgentState.DISCONNECTED
        ops.heartbeat(agent, a1.session)  # sent before the agent noticed: no sign of life
        sim.clock.t += ops.lost_after
        ops.check_liveness(sim.clock.monotonic())
        assert state_of(agent) is AgentState.LOST

    asyncio.run(scenario())


def test_a_master_frozen_longer_than_the_timeouts_blames_no_agent(tmp_path: Path) -> None:
    async def scenario() -> None:
        sim = Sim(tmp_path)
        await sim.add_agent("a1")
        ops, agent = sim.master.agents, sim.master.state.agents["a1"]
        sim.clock.t += ops.lost_after * 2  # the master was stopped; the agent kept beating
        ops.forgive(ops.lost_after * 2)
        ops.check_liveness(sim.clock.monotonic())
        assert agent.state is AgentState.ACTIVE and agent.connected

    asyncio.run(scenario())
