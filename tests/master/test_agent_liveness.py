"""Agent liveness on the master: silent sessions are closed on both ends, an agent is declared
LOST even if the store refused to record its disconnection, and a frozen master blames nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from corral.master.events import Event
from corral.master.policy.effects import HangUp, MarkDisconnected, MarkLost
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


# A liveness check reads the agents' facts on the loop, then applies its verdicts in the writer's
# turn, in a worker thread: a registration or a heartbeat may come in between. A verdict the
# facts no longer call for is dropped, or an agent that is connected and beating is recorded
# DISCONNECTED or LOST, with nothing to ever set it right (seen in CI: agents and their tasks
# stuck for good, nothing in the logs).


def test_a_disconnection_seen_before_the_agent_registered_again_is_not_recorded_after(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1")
        ops, agent = sim.master.agents, sim.master.state.agents["a1"]
        ops.dispatch.detach(agent, a1.session)  # its connection ended, not yet recorded
        [seen] = ops.verdicts(sim.clock.monotonic())
        assert isinstance(seen, MarkDisconnected)
        await a1.connect()  # it dials again and registers before the check's write
        ops.judge(seen)
        assert state_of(agent) is AgentState.ACTIVE and agent.connected

    asyncio.run(scenario())


def test_a_loss_seen_before_the_agent_came_back_does_not_take_its_tasks(sim: Sim) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1")
        ops, agent = sim.master.agents, sim.master.state.agents["a1"]
        a1.disconnect()
        sim.clock.t += ops.lost_after + 1
        [seen] = ops.verdicts(sim.clock.monotonic())
        assert isinstance(seen, MarkLost)
        await a1.connect()
        ops.judge(seen)
        assert state_of(agent) is AgentState.ACTIVE and agent.connected

    asyncio.run(scenario())


def test_a_hang_up_seen_before_a_heartbeat_came_is_not_done(sim: Sim) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1")
        ops, agent = sim.master.agents, sim.master.state.agents["a1"]
        sim.clock.t += ops.disconnect_after + 1
        [seen] = ops.verdicts(sim.clock.monotonic())
        assert isinstance(seen, HangUp)
        ops.heartbeat(agent, a1.session)
        ops.judge(seen)
        assert state_of(agent) is AgentState.ACTIVE and agent.connected
        assert not a1.session.closed

    asyncio.run(scenario())


def test_a_registered_agent_is_never_seen_active_without_its_session(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registration's commit makes the agent ACTIVE and attaches its session in one step:
    a liveness check between the two would record it DISCONNECTED."""
    seen: list[tuple[AgentState, bool]] = []
    bus = sim.master.state.bus
    publish = bus.publish

    def observe(events: Sequence[Event]) -> None:
        agent = sim.master.state.agents.get("a1")
        if agent is not None:
            seen.append((agent.state, agent.connected))
        publish(events)

    monkeypatch.setattr(bus, "publish", observe)

    async def scenario() -> None:
        a1 = await sim.add_agent("a1")
        a1.disconnect()
        await a1.connect()

    asyncio.run(scenario())
    assert (AgentState.ACTIVE, True) in seen
    assert (AgentState.ACTIVE, False) not in seen


def test_a_closed_connection_recorded_after_the_agent_registered_again_changes_nothing(
    sim: Sim,
) -> None:
    async def scenario() -> None:
        a1 = await sim.add_agent("a1")
        ops, agent = sim.master.agents, sim.master.state.agents["a1"]
        ops.dispatch.detach(agent, a1.session)  # the channel ends; its write is queued...
        await a1.connect()  # ...behind the agent's registration on a new connection
        ops.record_disconnection(agent, "connection closed")
        assert state_of(agent) is AgentState.ACTIVE and agent.connected

    asyncio.run(scenario())
