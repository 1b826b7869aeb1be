"""The service reconciler: tables for the rules, hypothesis for the promises."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.scheduler.reconcile import Decision, Instance, Want, launch_delay, reconcile

_ids = itertools.count()


def inst(config: int = 1, ready: bool = True, placed: bool = True, order: float = 0.0) -> Instance:
    return Instance(
        id=f"t{next(_ids)}",
        config=config,
        placed=placed,
        running=ready,
        ready=ready,
        order=order,
    )


def test_a_steady_service_starts_what_is_missing() -> None:
    d = reconcile(Want(instances=3, config=1, upgrading=False), [inst()])
    assert d.start == 2 and d.stop == () and not d.done


def test_a_steady_service_stops_pending_tasks_before_running_ones() -> None:
    running, pending = inst(order=1), inst(ready=False, placed=False, order=0)
    d = reconcile(Want(instances=1, config=1, upgrading=False), [running, pending])
    assert d.stop == ((pending.id, "scaled down"),)


def test_scaling_down_stops_the_youngest_first() -> None:
    old, young = inst(order=1), inst(order=2)
    d = reconcile(Want(instances=1, config=1, upgrading=False), [old, young])
    assert [tid for tid, _ in d.stop] == [young.id]


def test_a_steady_service_is_done_when_every_instance_is_ready() -> None:
    assert reconcile(Want(2, 1, False), [inst(), inst()]).done
    assert not reconcile(Want(2, 1, False), [inst(), inst(ready=False)]).done
    assert reconcile(Want(0, 1, False), []).done


def test_outside_a_deployment_old_configurations_count_as_instances() -> None:
    d = reconcile(Want(instances=2, config=2, upgrading=False), [inst(config=1), inst(config=1)])
    assert d.idle and d.done


def test_an_upgrade_with_default_strategy_starts_all_new_tasks_and_stops_nothing_yet() -> None:
    d = reconcile(Want(instances=2, config=2, upgrading=True), [inst(config=1), inst(config=1)])
    assert d.start == 2 and d.stop == () and not d.done


def test_an_upgrade_stops_an_old_task_for_each_new_one_that_is_ready() -> None:
    old = [inst(config=1, order=i) for i in range(2)]
    new = [inst(config=2, order=5), inst(config=2, ready=False, order=6)]
    d = reconcile(Want(instances=2, config=2, upgrading=True), old + new)
    assert len(d.stop) == 1 and d.stop[0][0] in {o.id for o in old}
    assert d.start == 0


def test_old_tasks_that_are_not_ready_are_stopped_at_once() -> None:
    sick = inst(config=1, ready=False)
    d = reconcile(Want(instances=1, config=2, upgrading=True), [sick])
    assert d.stop == ((sick.id, "replaced by configuration 2"),) and d.start == 1


def test_without_over_capacity_the_upgrade_makes_room_down_to_the_minimum_health() -> None:
    old = [inst(config=1, order=i) for i in range(4)]
    d = reconcile(Want(4, 2, True, minimum_health_capacity=0.5, maximum_over_capacity=0), old)
    assert d.start == 0 and len(d.stop) == 2


def test_an_upgrade_is_done_once_only_ready_tasks_of_the_new_configuration_remain() -> None:
    assert reconcile(Want(2, 2, True), [inst(config=2), inst(config=2)]).done
    assert not reconcile(Want(2, 2, True), [inst(config=2), inst(config=1)]).done


def test_the_launch_delay_grows_by_the_factor_up_to_the_cap() -> None:
    assert launch_delay(0, 1, 1.15, 300) == 0
    assert launch_delay(1, 1, 1.15, 300) == 1
    assert math.isclose(launch_delay(3, 1, 1.15, 300), 1.3225)
    assert launch_delay(100, 1, 2, 300) == 300
    assert launch_delay(10**6, 1, 100, 300) == 300  # no overflow on a very long streak


wants = st.builds(
    Want,
    instances=st.integers(0, 8),
    config=st.just(2),
    upgrading=st.booleans(),
    minimum_health_capacity=st.sampled_from([0.0, 0.5, 0.75, 1.0]),
    maximum_over_capacity=st.sampled_from([0.25, 0.5, 1.0]),
)
fleets = st.lists(
    st.builds(
        inst,
        config=st.sampled_from([1, 2]),
        ready=st.booleans(),
        order=st.floats(0, 100),
    ),
    max_size=12,
)


def _apply(d: Decision, instances: list[Instance], config: int) -> list[Instance]:
    """Carry a decision out; by the next pass every task that was starting is ready."""
    stopped = {tid for tid, _ in d.stop}
    kept = [
        replace(i, placed=True, running=True, ready=True) for i in instances if i.id not in stopped
    ]
    return kept + [inst(config=config, ready=True, order=1000 + n) for n in range(d.start)]


@settings(max_examples=300, deadline=None)
@given(wants, fleets)
def test_a_decision_never_stops_a_task_twice_and_is_deterministic(
    want: Want, instances: list[Instance]
) -> None:
    d = reconcile(want, instances)
    ids = [tid for tid, _ in d.stop]
    assert len(ids) == len(set(ids)) and set(ids) <= {i.id for i in instances}
    assert reconcile(want, instances) == d


@settings(max_examples=300, deadline=None)
@given(wants, fleets)
def test_an_upgrade_never_drops_below_minimum_health_by_its_own_stops(
    want: Want, instances: list[Instance]
) -> None:
    if not want.upgrading:
        return
    d = reconcile(want, instances)
    stopped = {tid for tid, _ in d.stop}
    ready_before = sum(i.ready for i in instances)
    ready_after = sum(i.ready for i in instances if i.id not in stopped)
    least = math.ceil(want.instances * want.minimum_health_capacity)
    # Extra new tasks over the count may go; otherwise ready tasks stay at least at the minimum.
    extra_new = max(0, sum(i.config == want.config for i in instances) - want.instances)
    assert ready_after + extra_new >= min(least, ready_before)
    live_after = len(instances) - len(stopped) + d.start
    most = max(want.instances, math.floor(want.instances * (1 + want.maximum_over_capacity)))
    most += most == least and want.instances > 0  # the one task of room rounding may leave
    assert d.start == 0 or live_after <= max(most, len(instances))


@settings(max_examples=200, deadline=None)
@given(wants, fleets)
def test_reconciling_again_and_again_reaches_the_wanted_state(
    want: Want, instances: list[Instance]
) -> None:
    fleet = instances
    for _ in range(30):
        d = reconcile(want, fleet)
        if d.done and d.idle:
            break
        fleet = _apply(d, fleet, want.config)
    assert len(fleet) == want.instances and all(i.ready for i in fleet)
    if want.upgrading:
        assert all(i.config == want.config for i in fleet)
