"""Ranking: BINPACK fills the fullest agent, SPREAD the emptiest, ties go to the lowest id."""

from __future__ import annotations

import pytest

from corral.scheduler import Resources, Strategy
from corral.scheduler.harness import Harness, res
from corral.scheduler.scoring import fit_score

TOTAL = Resources(4000, 4000)


@pytest.mark.parametrize(
    ("strategy", "free", "expected"),
    [
        (Strategy.BINPACK, Resources(4000, 4000), 0.0),
        (Strategy.BINPACK, Resources(0, 0), 1.0),
        (Strategy.SPREAD, Resources(4000, 4000), 1.0),
        (Strategy.SPREAD, Resources(0, 0), 0.0),
    ],
    ids=[
        "binpack_scores_an_agent_left_empty_zero",
        "binpack_scores_an_agent_left_full_one",
        "spread_scores_an_agent_left_empty_one",
        "spread_scores_an_agent_left_full_zero",
    ],
)
def test_scores_run_from_zero_to_one(strategy: Strategy, free: Resources, expected: float) -> None:
    assert fit_score(strategy, TOTAL, free, Resources()) == pytest.approx(expected)


def test_binpack_scores_the_agent_fuller_after_placement_higher() -> None:
    request = Resources(1000, 1000)
    half = fit_score(Strategy.BINPACK, TOTAL, Resources(2000, 2000), request)
    empty = fit_score(Strategy.BINPACK, TOTAL, TOTAL, request)
    assert half > empty


def test_an_agent_without_a_resource_scores_as_full_of_it() -> None:
    assert fit_score(Strategy.BINPACK, Resources(4000, 0), Resources(4000, 0), Resources()) > 0


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [(Strategy.BINPACK, "busy"), (Strategy.SPREAD, "idle")],
    ids=["binpack_prefers_the_fullest_agent", "spread_prefers_the_emptiest_agent"],
)
def test_strategy_picks_the_agent(strategy: Strategy, expected: str) -> None:
    h = Harness()
    h.add_agent("busy", cpus=4, mem=4096, used=res(2, 2048))
    h.add_agent("idle", cpus=4, mem=4096)
    h.add_task("t", strategy=strategy)
    assert h.plan().placements[0].agent_id == expected


def test_binpack_stacks_tasks_while_spread_deals_them_out() -> None:
    packed, spread = Harness(), Harness()
    for h, strategy in ((packed, Strategy.BINPACK), (spread, Strategy.SPREAD)):
        h.add_agents(3, cpus=4)
        h.add_tasks(3, strategy=strategy)
    assert [p.agent_id for p in packed.plan().placements] == ["agent-00"] * 3
    assert [p.agent_id for p in spread.plan().placements] == ["agent-00", "agent-01", "agent-02"]


def test_equal_scores_go_to_the_lowest_agent_id_whatever_the_snapshot_order() -> None:
    h = Harness()
    for name in ("c", "a", "b"):
        h.add_agent(name)
    h.add_task("t")
    assert h.plan().placements[0].agent_id == "a"


def test_binpack_weighs_both_cpu_and_mem() -> None:
    h = Harness()
    h.add_agent("cpu-busy", cpus=4, mem=4096, used=res(3, 0))
    h.add_agent("both-busy", cpus=4, mem=4096, used=res(2, 2048))
    h.add_task("t", cpus=0.5, mem=128)
    # 10**f punishes the free mem of cpu-busy more than it rewards its fuller cpu.
    assert h.plan().placements[0].agent_id == "both-busy"
