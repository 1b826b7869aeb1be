"""Agent liveness: which silent agents to hang up on, to mark DISCONNECTED, to declare LOST."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from corral.master.policy.effects import Excuse, HangUp, MarkDisconnected, MarkLost
from corral.spec.states import AgentState

Verdict = Excuse | HangUp | MarkDisconnected | MarkLost


@dataclass(frozen=True, slots=True)
class Limits:
    """How long an agent may be silent."""

    disconnect_after: float  # a connected agent silent longer is hung up on
    lost_after: float  # a disconnected agent silent longer is LOST, with its tasks


@dataclass(frozen=True, slots=True)
class AgentSilence:
    """What liveness needs of an agent."""

    id: str
    hostname: str
    state: AgentState
    connected: bool  # a live session exists
    silent_since: float  # monotonic time of its last sign of life


def liveness(
    agents: Iterable[AgentSilence], now: float, limits: Limits, frozen_for: float = 0.0
) -> list[Verdict]:
    """The verdicts on ``agents`` at monotonic time ``now``. ``frozen_for``: the master itself
    was frozen that long just before, and heard nobody meanwhile, so nobody is blamed for it:
    each agent is excused that long (for later checks too), and judged on the rest."""
    verdicts: list[Verdict] = []
    for agent in agents:
        if frozen_for > 0:
            why = f"the master was frozen for {frozen_for:.1f}s"
            verdicts.append(Excuse(agent.id, frozen_for, why))
        verdict = _judge(agent, now - agent.silent_since - frozen_for, limits)
        if verdict is not None:
            verdicts.append(verdict)
    return verdicts


def _judge(agent: AgentSilence, silent: float, limits: Limits) -> Verdict | None:
    if agent.connected:
        if silent > limits.disconnect_after:
            return HangUp(agent.id, f"silent for {silent:.0f}s")
        return None
    if agent.state is not AgentState.LOST and silent > limits.lost_after:
        return MarkLost(agent.id, f"agent {agent.hostname} silent for {silent:.0f}s")
    if agent.state in (AgentState.ACTIVE, AgentState.DRAINING):
        # No connection but still recorded as connected: an earlier write failed.
        return MarkDisconnected(agent.id, "connection closed")
    return None
