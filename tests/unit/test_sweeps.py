"""Arrays and parameter sweeps (``corral.spec.sweeps``): parsing Slurm-style array expressions,
expanding a run into slots, and replacing placeholders."""

from __future__ import annotations

import re
import tracemalloc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from corral.spec.jobs import JobSpec
from corral.spec.sweeps import MAX_ARRAY_INDEX, Slot, expand, parse_array, substitute, sweep_size

# --- parse_array


@pytest.mark.parametrize(
    ("expr", "indices"),
    [
        ("7", [7]),
        ("0-95", list(range(96))),
        ("1,3,5-7", [1, 3, 5, 6, 7]),
        ("0-99:2", list(range(0, 100, 2))),
        ("0-10:3", [0, 3, 6, 9]),
        ("5-5", [5]),
        ("5,1,3", [1, 3, 5]),
        ("1-4,3-6", [1, 2, 3, 4, 5, 6]),
        ("2,2,2", [2]),
        (" 1 , 3-4 ", [1, 3, 4]),
        (f"{MAX_ARRAY_INDEX}", [MAX_ARRAY_INDEX]),
    ],
    ids=repr,
)
def test_an_array_expression_names_sorted_unique_indices(expr: str, indices: list[int]) -> None:
    assert parse_array(expr) == indices


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("5-1", "range '5-1' ends before it starts"),
        ("", "'' is not an array expression such as '0-95' or '1,3,5-7'"),
        ("   ", "is not an array expression"),
        ("1,,2", "'1,,2' is not an array expression"),
        ("1,", "'1,' is not an array expression"),
        ("a", "'a' is not an index, a range 'A-B' or a stepped range 'A-B:S'"),
        ("-1", "'-1' is not an index"),
        ("1-", "'1-' is not an index"),
        ("1:2", "'1:2' is not an index"),
        ("1-2:", "'1-2:' is not an index"),
        ("1.5", "'1.5' is not an index"),
        ("1-2:0", "step in '1-2:0' must be at least 1"),
        (f"0-{MAX_ARRAY_INDEX + 1}", f"index {MAX_ARRAY_INDEX + 1} is over the limit of 10000000"),
        (f"{MAX_ARRAY_INDEX + 1}", "is over the limit"),
    ],
    ids=repr,
)
def test_a_bad_array_expression_is_refused_with_the_reason(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_array(expr)


# A range as (start, length, step); written 'S', 'S-E' or 'S-E:T' at random.
RANGES = st.tuples(st.integers(0, 300), st.integers(0, 60), st.integers(1, 7), st.integers(0, 2))


def written(start: int, length: int, step: int, form: int) -> str:
    if form == 0 and length == 0:
        return str(start)
    if form == 1 or step == 1:
        return f"{start}-{start + length}"
    return f"{start}-{start + length}:{step}"


def named(start: int, length: int, step: int, form: int) -> set[int]:
    if form == 0 and length == 0:
        return {start}
    return set(range(start, start + length + 1, 1 if form == 1 else step))


@given(st.lists(RANGES, min_size=1, max_size=6))
def test_an_array_of_ranges_is_the_sorted_union_of_the_ranges(
    ranges: list[tuple[int, int, int, int]],
) -> None:
    expr = ",".join(written(*r) for r in ranges)
    assert parse_array(expr) == sorted(set().union(*(named(*r) for r in ranges)))


def job(**fields: Any) -> dict[str, Any]:
    return {"name": "sweep", "task": {"command": ["sim"]}, **fields}


def test_a_sweep_far_over_the_task_limit_is_refused_at_once() -> None:
    # A run may have 100,000 tasks. Finding that '0-10000000' names ten million and one must not
    # take the seconds and the gigabyte of enumerating them: validation runs on the master's
    # event loop, so one such request would stall every agent's channel.
    # Measured in memory, not time, so a slow machine cannot fail it: enumerating would take
    # hundreds of MiB.
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError, match="over the limit of 100000"):
            JobSpec.model_validate(job(array=f"0-{MAX_ARRAY_INDEX}"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024, f"refusing it took {peak / 2**20:.0f} MiB"


# --- expand and sweep_size


def slots(array: str | None, params: dict[str, list[str]]) -> list[tuple[int, int, dict[str, str]]]:
    return [(s.slot, s.index, dict(s.params)) for s in expand(array, params)]


def test_a_job_without_array_or_params_has_one_slot_with_index_zero() -> None:
    assert slots(None, {}) == [(0, 0, {})]


def test_an_array_gives_one_slot_per_index_and_index_is_the_array_index() -> None:
    assert slots("3-5,9", {}) == [(0, 3, {}), (1, 4, {}), (2, 5, {}), (3, 9, {})]


def test_a_sweep_is_the_product_of_parameters_taken_in_name_order() -> None:
    # Names in sorted order, the last one varying fastest; without an array, index is the slot.
    assert slots(None, {"seed": ["1", "2"], "energy": ["lo", "hi"]}) == [
        (0, 0, {"energy": "lo", "seed": "1"}),
        (1, 1, {"energy": "lo", "seed": "2"}),
        (2, 2, {"energy": "hi", "seed": "1"}),
        (3, 3, {"energy": "hi", "seed": "2"}),
    ]


def test_an_array_with_params_varies_the_params_fastest_and_keeps_the_array_index() -> None:
    assert slots("10,20", {"e": ["1", "2"]}) == [
        (0, 10, {"e": "1"}),
        (1, 10, {"e": "2"}),
        (2, 20, {"e": "1"}),
        (3, 20, {"e": "2"}),
    ]


@pytest.mark.parametrize(
    ("array", "params", "size"),
    [
        (None, {}, 1),
        ("0-95", {}, 96),
        ("0-99:2", {"a": ["1", "2", "3"]}, 150),
        (None, {"a": ["1", "2"], "b": ["x", "y", "z"]}, 6),
        ("1-3,2-4", {"a": ["1"]}, 4),
        ("7-9,0-2", {}, 6),
        ("0-10:2,1-9:2", {}, 11),
        ("5,5", {}, 1),
        ("0-99999", {}, 100_000),
    ],
)
def test_the_size_of_a_sweep_is_its_number_of_slots(
    array: str | None, params: dict[str, list[str]], size: int
) -> None:
    assert sweep_size(array, params) == size == len(list(expand(array, params)))


def test_a_parameter_name_must_be_a_whole_identifier() -> None:
    # Python's '$' also matches before a final newline, so 'seed\n' passes a '^...$' match; the
    # name then reaches tasks as the variable CORRAL_PARAM_seed<newline>.
    with pytest.raises(ValidationError, match="parameter name"):
        JobSpec.model_validate(job(params={"seed\n": ["1"]}))


# --- substitute


SLOT = Slot(slot=2, index=7, params={"energy": "10", "seed": "a"})


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("run_{index}.mac", "run_7.mac"),
        ("{index}-{index}", "7-7"),
        ("--e {energy} --s {seed}", "--e 10 --s a"),
        ("no placeholders", "no placeholders"),
        ("${HOME}/out", "${HOME}/out"),
        ("awk '{print $1}'", "awk '{print $1}'"),
        ('{"a": 1}', '{"a": 1}'),
        ("{unknown} {} {Index} { index }", "{unknown} {} {Index} { index }"),
        ("{{index}}", "{7}"),
        ("{slot}", "{slot}"),
    ],
    ids=repr,
)
def test_placeholders_are_replaced_and_other_braces_left_alone(text: str, result: str) -> None:
    assert substitute(text, SLOT) == result


def test_a_parameter_value_is_inserted_as_it_is_not_substituted_again() -> None:
    # The value of one parameter may look like another placeholder; it is data, not template.
    slot = Slot(slot=0, index=0, params={"a": "{b}", "b": "B", "c": "{index}"})
    assert substitute("{a} {b} {c}", slot) == "{b} B {index}"
