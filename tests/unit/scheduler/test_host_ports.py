"""Host ports: a task that needs an exact host port goes only where that port is free.

Free means: not in the agent's ``ports_used`` when the plan starts, and not given to a task the
same plan put on that agent before. Tasks without host ports never meet the check.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from corral.scheduler import Constraint, Operator, Strategy, plan, plan_exhaustive, selection
from corral.scheduler.harness import Harness, check_plan, first_refusals, where


@dataclass(frozen=True)
class Agent:
    id: str
    ports_used: tuple[int, ...] = ()
    cpus: float = 4


@dataclass(frozen=True)
class Task:
    id: str
    host_ports: tuple[int, ...] = ()
    group: str = "web"
    cpus: float = 1


@dataclass(frozen=True)
class Case:
    agents: Sequence[Agent]
    tasks: Sequence[Task]
    placed: Mapping[str, str]  # task id -> agent id
    unplaced: Mapping[str, str] = field(default_factory=dict)  # task id -> reason


CASES = {
    "two_tasks_wanting_port_8080_go_to_two_agents": Case(
        # BINPACK alone would put both on a1, the fuller agent once w0 is there.
        agents=[Agent("a1"), Agent("a2")],
        tasks=[Task("w0", (8080,)), Task("w1", (8080,))],
        placed={"w0": "a1", "w1": "a2"},
    ),
    "a_third_task_wanting_8080_on_two_agents_waits_for_the_host_port": Case(
        agents=[Agent("a1"), Agent("a2")],
        tasks=[Task("w0", (8080,)), Task("w1", (8080,)), Task("w2", (8080,))],
        placed={"w0": "a1", "w1": "a2"},
        unplaced={"w2": "0/2 agents fit: 2 host port in use"},
    ),
    "an_agent_whose_ports_used_holds_8080_is_skipped": Case(
        agents=[Agent("a1", ports_used=(8080,)), Agent("a2")],
        tasks=[Task("w0", (8080,))],
        placed={"w0": "a2"},
    ),
    "tasks_without_host_ports_are_unaffected_by_ports_in_use": Case(
        agents=[Agent("a1", ports_used=(8080,)), Agent("a2")],
        tasks=[Task("t0", group="batch"), Task("t1", group="batch")],
        placed={"t0": "a1", "t1": "a1"},
    ),
    "tasks_without_host_ports_share_an_agent_with_one_holding_a_port": Case(
        agents=[Agent("a1"), Agent("a2")],
        tasks=[Task("w0", (8080,)), Task("t0", group="batch"), Task("w1", (8080,))],
        placed={"w0": "a1", "t0": "a1", "w1": "a2"},
    ),
    "different_host_ports_share_an_agent": Case(
        agents=[Agent("a1"), Agent("a2")],
        tasks=[Task("w0", (8080,)), Task("x0", (9090,), group="api")],
        placed={"w0": "a1", "x0": "a1"},
    ),
    "one_port_of_several_in_use_is_enough_to_skip_an_agent": Case(
        agents=[Agent("a1", ports_used=(443,)), Agent("a2")],
        tasks=[Task("w0", (80, 443))],
        placed={"w0": "a2"},
    ),
    "tasks_of_other_groups_contend_for_a_port_too": Case(
        agents=[Agent("a1"), Agent("a2")],
        tasks=[Task("w0", (8080,), group="web"), Task("x0", (8080,), group="api")],
        placed={"w0": "a1", "x0": "a2"},
    ),
    "a_port_in_use_is_reported_before_missing_resources": Case(
        agents=[Agent("a1", ports_used=(8080,), cpus=0.5), Agent("a2", cpus=0.5)],
        tasks=[Task("w0", (8080,))],
        placed={},
        unplaced={"w0": "0/2 agents fit: 1 host port in use, 1 insufficient cpus"},
    ),
    "every_task_of_a_cohort_that_waits_gets_the_host_port_reason": Case(
        agents=[Agent("a1")],
        tasks=[Task("w0", (8080,)), Task("w1", (8080,)), Task("w2", (8080,))],
        placed={"w0": "a1"},
        unplaced={
            "w1": "0/1 agents fit: 1 host port in use",
            "w2": "0/1 agents fit: 1 host port in use",
        },
    ),
    "port_zero_is_not_an_exact_port_and_is_refused": Case(
        agents=[Agent("a1")],
        tasks=[Task("w0", (0,))],
        placed={},
        unplaced={"w0": "invalid request: host port outside 1..65535"},
    ),
    "a_port_above_65535_is_refused": Case(
        agents=[Agent("a1")],
        tasks=[Task("w0", (65536,))],
        placed={},
        unplaced={"w0": "invalid request: host port outside 1..65535"},
    ),
    "a_port_listed_twice_as_for_tcp_and_udp_is_needed_once": Case(
        agents=[Agent("a1"), Agent("a2")],
        tasks=[Task("dns0", (53, 53)), Task("dns1", (53, 53))],
        placed={"dns0": "a1", "dns1": "a2"},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_host_ports(case: Case) -> None:
    h = Harness()
    for a in case.agents:
        h.add_agent(a.id, cpus=a.cpus, ports_used=a.ports_used)
    for t in case.tasks:
        h.add_task(t.id, group=t.group, cpus=t.cpus, host_ports=t.host_ports)
    result = h.plan()
    assert where(result) == case.placed
    assert result.unplaced == case.unplaced
    assert check_plan(h.snapshot(), h.pending, result) == []
    slow = plan_exhaustive(h.snapshot(), h.pending)
    assert slow.placements == result.placements
    assert first_refusals(h.pending, slow) == first_refusals(h.pending, result)


def test_a_running_task_added_with_add_placed_holds_its_port() -> None:
    h = Harness()
    h.add_agents(2)
    h.add_placed("old", "agent-00", host_ports=[8080])
    h.add_task("new", host_ports=[8080])
    assert h.snapshot().agents[0].ports_used == frozenset({8080})
    assert where(h.plan()) == {"new": "agent-01"}


def test_host_ports_tell_otherwise_identical_tasks_apart() -> None:
    # One group, one shape but for the port: two cohorts, each with its own candidates.
    h = Harness()
    h.add_agent("a1", ports_used=[8080])
    h.add_task("w0", host_ports=[8080])
    h.add_task("t0")
    result = h.plan()
    assert where(result) == {"t0": "a1"}
    assert result.unplaced == {"w0": "0/1 agents fit: 1 host port in use"}


def test_group_by_spreads_over_the_values_where_the_host_port_was_free_at_the_start() -> None:
    # Like resources: an agent holding the port when the plan starts is not statically
    # feasible, so rack a, all of whose agents hold 8080, is not a value GROUP_BY waits for.
    h = Harness()
    h.add_agent("a1", rack="a", ports_used=[8080])
    h.add_agent("b1", rack="b")
    h.add_agent("b2", rack="b")
    h.add_tasks(2, constraints=[Constraint("rack", Operator.GROUP_BY)], host_ports=[8080])
    result = h.plan()
    assert where(result) == {"g-0": "b1", "g-1": "b2"}
    assert plan_exhaustive(h.snapshot(), h.pending).placements == result.placements


def ported_cluster(seed: int) -> Harness:
    """Services on fixed ports among batch work, with group rules that fork private rankings."""
    rng = random.Random(seed)
    h = Harness()
    for i in range(24):
        h.add_agent(
            f"agent-{i:02d}",
            cpus=rng.choice((4, 8)),
            rack=f"r{i % 4}",
            ports_used=rng.choice(((), (), (80,), (8080,), (80, 443))),
        )
    rules = [
        (),
        (Constraint("rack", Operator.MAX_PER, "3"),),
        (Constraint("hostname", Operator.UNIQUE),),
        (Constraint("rack", Operator.GROUP_BY),),
    ]
    ports = [(), (), (80,), (8080,), (80, 443), (9000,)]
    for g in range(40):
        h.add_tasks(
            rng.randint(1, 12),
            group=f"svc{g}",
            cpus=rng.choice((0.5, 1, 2)),
            constraints=rng.choice(rules),
            strategy=rng.choice((Strategy.BINPACK, Strategy.SPREAD)),
            owner=rng.choice(("alice", "bob")),
            host_ports=rng.choice(ports),
        )
    return h


@pytest.mark.parametrize(
    ("fork_after", "sweep_slack"),
    [
        pytest.param(selection.FORK_AFTER, selection.SWEEP_SLACK, id="with_the_default_shortcuts"),
        pytest.param(0, 0, id="forking_and_sweeping_at_every_chance"),
        pytest.param(10**9, 10**9, id="never_forking_nor_sweeping"),
    ],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_plan_matches_the_exhaustive_reference_with_services_on_fixed_ports(
    monkeypatch: pytest.MonkeyPatch, seed: int, fork_after: int, sweep_slack: int
) -> None:
    h = ported_cluster(seed)
    expected = plan_exhaustive(h.snapshot(), h.pending)
    monkeypatch.setattr(selection, "FORK_AFTER", fork_after)
    monkeypatch.setattr(selection, "SWEEP_SLACK", sweep_slack)
    result = plan(h.snapshot(), h.pending)
    assert result.placements == expected.placements
    assert first_refusals(h.pending, result) == first_refusals(h.pending, expected)
    assert check_plan(h.snapshot(), h.pending, result) == []
    reasons = " ".join(result.unplaced.values())
    assert "host port in use" in reasons  # the scenario exercises the check
