"""Agent liveness: silent agents are hung up on, then declared LOST; a frozen master blames no
agent for its own silence."""

from __future__ import annotations

import pytest

from corral.master.policy.effects import Effect, Excuse, HangUp, MarkDisconnected, MarkLost
from corral.master.policy.liveness import AgentSilence, Limits, liveness
from corral.spec.states import AgentState
from tests.master.policy.harness import Harness

A = AgentState
LIMITS = Limits(disconnect_after=3.0, lost_after=8.0)


@pytest.mark.parametrize(
    ("state", "connected", "silent", "verdicts"),
    [
        pytest.param(A.ACTIVE, True, 1.0, [], id="an agent heard a second ago is fine"),
        pytest.param(
            A.ACTIVE,
            True,
            4.0,
            [HangUp("a1", "silent for 4s")],
            id="a connected agent silent longer than disconnect_after is hung up on",
        ),
        pytest.param(
            A.DRAINING,
            True,
            4.0,
            [HangUp("a1", "silent for 4s")],
            id="a draining agent is hung up on like any other",
        ),
        pytest.param(
            A.ACTIVE,
            True,
            20.0,
            [HangUp("a1", "silent for 20s")],
            id="a connected agent is first hung up on, never lost at once",
        ),
        pytest.param(
            A.DISCONNECTED,
            False,
            5.0,
            [],
            id="a DISCONNECTED agent within lost_after is left alone",
        ),
        pytest.param(
            A.DISCONNECTED,
            False,
            9.0,
            [MarkLost("a1", "agent a1 silent for 9s")],
            id="a DISCONNECTED agent silent longer than lost_after is LOST",
        ),
        pytest.param(A.LOST, False, 100.0, [], id="a LOST agent is not lost twice"),
        pytest.param(
            A.ACTIVE,
            False,
            1.0,
            [MarkDisconnected("a1", "connection closed")],
            id="an agent without a connection still recorded ACTIVE is marked DISCONNECTED",
        ),
        pytest.param(
            A.ACTIVE,
            False,
            9.0,
            [MarkLost("a1", "agent a1 silent for 9s")],
            id="an agent whose disconnection was never recorded is still lost in time",
        ),
    ],
)
def test_the_verdict_on_one_agent(
    state: AgentState, connected: bool, silent: float, verdicts: list[Effect]
) -> None:
    agent = AgentSilence("a1", "a1", state, connected, silent_since=100.0 - silent)
    assert liveness([agent], 100.0, LIMITS) == verdicts


def test_a_master_frozen_20_s_blames_no_agent() -> None:
    h = Harness()
    h.agent("a1", silent_for=20.5)
    h.agent("a2", A.DISCONNECTED, silent_for=20.5)
    assert h.check_liveness(frozen_for=20.0) == [
        Excuse("a1", 20.0, "the master was frozen for 20.0s"),
        Excuse("a2", 20.0, "the master was frozen for 20.0s"),
    ]
    assert h.check_liveness() == []  # the excuse holds for later checks too


def test_a_frozen_master_still_blames_silence_from_before_the_freeze() -> None:
    h = Harness()
    h.agent("a1", A.DISCONNECTED, silent_for=30.0)
    assert h.check_liveness(frozen_for=20.0)[-1] == MarkLost("a1", "agent a1 silent for 10s")


def test_a_silent_agent_is_hung_up_on_then_lost() -> None:
    h = Harness()
    h.agent("a1")
    h.now += 4
    assert h.check_liveness() == [HangUp("a1", "silent for 4s")]
    h.now += 4
    assert h.check_liveness() == []
    h.now += 1
    assert h.check_liveness() == [MarkLost("a1", "agent a1 silent for 9s")]
    h.now += 100
    assert h.check_liveness() == []


def test_each_agent_is_judged_on_its_own_silence() -> None:
    h = Harness()
    h.agent("quiet", silent_for=5.0)
    h.agent("chatty", silent_for=0.5)
    assert h.check_liveness() == [HangUp("quiet", "silent for 5s")]
