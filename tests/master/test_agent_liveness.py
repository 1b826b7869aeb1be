"""Agent liveness on the master: silent sessions are closed on both ends, an agent is declared
LOST even if the store refused to record its disconnection, and a frozen master blames nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from corral.master.records import AgentRecord, AgentSession
from corral.spec.states import AgentState
from corral.store.store import Store, StoreFull
from tests.master.sim import Sim


@contextmanager
def refusing_writes(store: Store) -> Iterator[type[Exception]]:
    """The database itself refuses every change of ``agents`` and ``events`` meanwhile, as a
    full disk would; answers what the store raises then. SQLite's trigger can only abort (an
    IntegrityError); PostgreSQL's raises the disk_full SQLSTATE a full disk gives."""
    postgres = store.engine.dialect.name == "postgresql"
    with store.engine.begin() as conn:
        if postgres:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'No space left on device' USING ERRCODE = 'disk_full'; "
                    "END $$"
                )
            )
        for table in ("agents", "events"):
            if postgres:
                conn.execute(
                    text(
                        f"CREATE TRIGGER refuse_{table} BEFORE INSERT OR UPDATE ON {table} "
                        "FOR EACH ROW EXECUTE FUNCTION refuse()"
                    )
                )
                continue
            for op in ("INSERT", "UPDATE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER refuse_{op.lower()}_{table} BEFORE {op} ON {table} "
                        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                    )
                )
    try:
        yield StoreFull if postgres else DBAPIError
    finally:
        with store.engine.begin() as conn:
            if postgres:
                conn.execute(text("DROP FUNCTION refuse CASCADE"))
            else:
                for table in ("agents", "events"):
                    for op in ("insert", "update"):
                        conn.execute(text(f"DROP TRIGGER refuse_{op}_{table}"))


def state_of(agent: AgentRecord) -> AgentState:
    """The agent's state now (a call, so that the type checker does not pin it)."""
    return agent.state


def test_an_agent_that_drops_while_the_store_refuses_writes_is_lost_once_it_accepts_them(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        await sim.add_agent("a1")
        ops, agent = sim.master.agents, sim.master.state.agents["a1"]
        with refusing_writes(sim.store) as refusal:
            with pytest.raises(refusal):
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
    sim: Sim,
) -> None:
    async def scenario() -> None:
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


def test_a_master_frozen_longer_than_the_timeouts_blames_no_agent(sim: Sim) -> None:
    async def scenario() -> None:
        await sim.add_agent("a1")
        ops, agent = sim.master.agents, sim.master.state.agents["a1"]
        sim.clock.t += ops.lost_after * 2  # the master was stopped; the agent kept beating
        await ops.forgive(ops.lost_after * 2)
        ops.check_liveness(sim.clock.monotonic())
        assert agent.state is AgentState.ACTIVE and agent.connected

    asyncio.run(scenario())
