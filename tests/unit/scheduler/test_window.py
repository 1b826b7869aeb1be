"""The window: a plan over each cohort cut to the free room, completed for the tasks left out,
is the plan over all of them, placements and reasons alike; and it is cut, when work outnumbers
room, to what the room can take."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.scheduler import (
    AgentSnapshot,
    Constraint,
    Operator,
    Plan,
    Quota,
    Resources,
    Snapshot,
    TaskRequest,
    plan,
)
from corral.scheduler.cohorts import cohort_key
from corral.scheduler.window import room_for, window, windowed_plan
from tests.unit.scheduler.test_properties import Work, work

OWNERS = ("alice", "bob")
RULES = (
    (),
    (),
    (Constraint("rack", Operator.LIKE, "a"),),
    (Constraint("hostname", Operator.UNIQUE),),
    (Constraint("rack", Operator.MAX_PER, "2"),),
    (Constraint("rack", Operator.GROUP_BY, "2"),),
)
ARRAY = st.sampled_from(
    list(product(OWNERS, (250, 500, 1000), (0, 256), RULES, (None, None, "gang"), range(1, 40)))
)
MEMBER = st.tuples(st.integers(0, 2), st.integers(0, 50))  # priority, order


def cohorts_of(pending: Sequence[TaskRequest]) -> list[list[TaskRequest]]:
    by_key: dict[object, list[TaskRequest]] = {}
    for task in pending:
        by_key.setdefault(cohort_key(task), []).append(task)
    return list(by_key.values())


@st.composite
def crowded(draw: st.DrawFn) -> Work:
    """Arrays of alike tasks, many more than a few small agents hold."""
    agents = tuple(
        AgentSnapshot(
            f"agent-{i}",
            f"h{i}",
            Resources(draw(st.sampled_from((1000, 2000, 4000))), 2048),
            Resources(draw(st.sampled_from((0, 500, 1000))), 0),
            attributes={"rack": "ab"[i % 2]},
            schedulable=draw(st.booleans()) or i == 0,
        )
        for i in range(draw(st.integers(1, 4)))
    )
    pending: list[TaskRequest] = []
    for g in range(draw(st.integers(1, 4))):
        owner, cpus, mem, rules, gang, size = draw(ARRAY)
        members = draw(st.lists(MEMBER, min_size=size, max_size=size))
        pending += [
            TaskRequest(
                id=f"g{g}-{i}",
                group=f"g{g}",
                resources=Resources(cpus, mem),
                constraints=rules,
                owner=owner,
                priority=priority,
                order=order,
                gang=None if gang is None else f"g{g}",
            )
            for i, (priority, order) in enumerate(members)
        ]
    quotas = draw(st.dictionaries(st.sampled_from(OWNERS), st.builds(Quota, st.none()), max_size=1))
    return Snapshot(agents, quotas=quotas), pending


def check_same(snapshot: Snapshot, pending: list[TaskRequest]) -> None:
    whole: Plan = plan(snapshot, pending)
    assert windowed_plan(plan, snapshot, cohorts_of(pending)) == whole


@settings(max_examples=200, deadline=None)
@given(work())
def test_the_window_changes_no_plan_of_any_cluster(drawn: Work) -> None:
    check_same(*drawn)


@settings(max_examples=300, deadline=None)
@given(crowded())
def test_the_window_changes_no_plan_of_crowded_clusters(drawn: Work) -> None:
    check_same(*drawn)


def test_a_long_array_is_cut_to_the_room_and_its_rest_waits_for_the_same_reason() -> None:
    agents = (AgentSnapshot("a1", "h1", Resources(2000, 4096), Resources(500, 0)),)
    array = [
        TaskRequest(id=f"t{i}", group="sweep", resources=Resources(500, 64), owner="ann", order=i)
        for i in range(1000)
    ]
    urgent = TaskRequest(
        id="urgent", group="sweep", resources=Resources(500, 64), owner="ann", priority=5
    )
    snapshot = Snapshot(agents)
    assert room_for(snapshot, Resources(500, 64)) == 3
    cut = window(snapshot, cohorts_of([*array, urgent]))
    # Room for 3, and one more to learn why the rest waits: the most urgent first.
    assert [t.id for t in cut.seen] == ["urgent", "t0", "t1", "t2"]
    result = windowed_plan(plan, snapshot, cohorts_of([*array, urgent]))
    assert [p.task_id for p in result.placements] == ["urgent", "t0", "t1"]
    assert len(result.waiting) == 998
    assert {s.reason for s in result.waiting.values()} == {result.waiting["t2"].reason}
    assert result == plan(snapshot, [*array, urgent])


def test_nothing_is_cut_when_the_plan_looks_for_preemptions_or_tasks_ask_nothing() -> None:
    agents = (AgentSnapshot("a1", "h1", Resources(1000, 1024), Resources()),)
    array = [
        TaskRequest(id=f"t{i}", group="g", resources=Resources(500), owner="o") for i in range(9)
    ]
    free = [TaskRequest(id=f"f{i}", group="f", resources=Resources(), owner="o") for i in range(9)]
    assert len(window(Snapshot(agents, preemption=True), [array]).seen) == 9
    assert len(window(Snapshot(agents), [array]).seen) == 3
    assert len(window(Snapshot(agents), [free]).seen) == 9
