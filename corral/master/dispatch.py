"""The dispatcher: the master's live connections to its agents, and the only holder of them.

Domain records (``AgentRecord``) know whether their agent is connected, not how: the sessions
are here, by agent id. Messages leave through the dispatcher after the state they carry has been
committed; a message to an agent without a session is dropped, and reconciliation repairs that
when the agent registers again.
"""

from __future__ import annotations

from typing import Any

from corral.master.records import AgentRecord, AgentSession


class Dispatcher:
    """Agent sessions by agent id: attached on registration, detached when they end."""

    def __init__(self) -> None:
        self._sessions: dict[str, AgentSession] = {}

    def attach(self, agent: AgentRecord, session: AgentSession) -> None:
        """Make ``session`` the agent's connection; an older one is closed (a newer
        connection replaces a half-dead one)."""
        old = self._sessions.get(agent.id)
        self._sessions[agent.id] = session
        agent.connected = True
        session.on_close = lambda: self._lost(agent, session)
        if old is not None and old is not session:
            old.close()

    def detach(self, agent: AgentRecord, session: AgentSession) -> bool:
        """Close ``session``; True if it was the agent's current one (now it has none)."""
        current = self._sessions.get(agent.id) is session
        session.close()
        return current

    def hang_up(self, agent_id: str) -> None:
        """Close the agent's connection (on both ends: it dials again and is reconciled)."""
        session = self._sessions.get(agent_id)
        if session is not None:
            session.close()

    def hang_up_all(self) -> None:
        """Close every agent's connection (this master stepped down)."""
        for session in list(self._sessions.values()):
            session.close()

    def is_current(self, agent_id: str, session: AgentSession) -> bool:
        """True if ``session`` is the agent's live connection."""
        return self._sessions.get(agent_id) is session and not session.closed

    def session_of(self, agent_id: str) -> AgentSession | None:
        """The agent's live connection, if any."""
        session = self._sessions.get(agent_id)
        return session if session is not None and not session.closed else None

    async def send(self, agent_id: str, message: dict[str, Any]) -> None:
        """Send a message to an agent; dropped when it is not connected."""
        session = self.session_of(agent_id)
        if session is not None:
            await session.send(message)

    async def ask(self, agent_id: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request (a read, a listing) and wait for its answer. ``ConnectionError`` when
        the agent is not connected or goes away, ``TimeoutError`` when it does not answer."""
        session = self.session_of(agent_id)
        if session is None:
            raise ConnectionError("agent not connected")
        return await session.request_read(message, timeout)

    def _lost(self, agent: AgentRecord, session: AgentSession) -> None:
        if self._sessions.get(agent.id) is session:
            del self._sessions[agent.id]
            agent.connected = False
