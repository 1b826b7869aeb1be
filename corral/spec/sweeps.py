"""Arrays and parameter sweeps: turning one task template into many concrete tasks.

A run's tasks are the cartesian product of the array indices and the parameter values. Task
number ``slot`` counts 0..N-1 over that product. ``{index}`` is the array index when the job has
an array, else the slot; ``{NAME}`` is the value of parameter NAME.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")
MAX_ARRAY_INDEX = 10_000_000
_ENUMERATE_AT_MOST = 1_000_000


def _ranges(expr: str) -> list[range]:
    """The ranges of an array expression, checked but not enumerated."""
    found = []
    parts = [p.strip() for p in expr.split(",")]
    if not expr.strip() or any(not p for p in parts):
        raise ValueError(f"{expr!r} is not an array expression such as '0-95' or '1,3,5-7'")
    for part in parts:
        m = _RANGE.match(part)
        if m is None:
            raise ValueError(f"{part!r} is not an index, a range 'A-B' or a stepped range 'A-B:S'")
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        step = int(m.group(3)) if m.group(3) is not None else 1
        if end < start:
            raise ValueError(f"range {part!r} ends before it starts")
        if step < 1:
            raise ValueError(f"step in {part!r} must be at least 1")
        if end > MAX_ARRAY_INDEX:
            raise ValueError(f"index {end} is over the limit of {MAX_ARRAY_INDEX}")
        found.append(range(start, end + 1, step))
    return found


def parse_array(expr: str) -> list[int]:
    """Parse Slurm-style array indices ('0-95', '1,3,5-7', '0-99:2') into sorted unique ints."""
    indices: set[int] = set()
    for r in _ranges(expr):
        indices.update(r)
    return sorted(indices)


def array_bound(expr: str) -> int:
    """At most how many indices an expression names (exact unless its ranges overlap), found
    without enumerating them: a huge array is refused before it costs memory."""
    return sum(len(r) for r in _ranges(expr))


def _array_len(expr: str | None) -> int:
    if expr is None:
        return 1
    ranges = sorted(_ranges(expr), key=lambda r: r.start)
    bound = sum(len(r) for r in ranges)
    # Ranges that do not overlap (a job's one range, nearly always) are counted as they are:
    # a view of a job of 100,000 tasks must not enumerate them. Overlapping ones are
    # enumerated, only when small enough to keep; a bound that large is over any task limit.
    disjoint = all(a[-1] < b.start for a, b in itertools.pairwise(ranges))
    if bound > _ENUMERATE_AT_MOST or disjoint:
        return bound
    return len(parse_array(expr))


def sweep_size(array: str | None, params: Mapping[str, Sequence[str]]) -> int:
    """Number of tasks a run of this array and sweep has."""
    return _array_len(array) * math.prod(len(v) for v in params.values())


@dataclass(frozen=True, slots=True)
class Slot:
    """One concrete task of a run: its number, its ``{index}`` and its parameter values."""

    slot: int
    index: int
    params: Mapping[str, str]


def expand(array: str | None, params: Mapping[str, Sequence[str]]) -> Iterator[Slot]:
    """Yield the slots of one run, in slot order."""
    indices: Sequence[int | None] = [None] if array is None else parse_array(array)
    names = sorted(params)
    combos = itertools.product(indices, *(params[n] for n in names))
    for slot, (index, *values) in enumerate(combos):
        number = slot if index is None else int(index)
        yield Slot(slot, number, {n: str(v) for n, v in zip(names, values, strict=True)})


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(text: str, slot: Slot) -> str:
    """Replace ``{index}`` and ``{NAME}`` placeholders in one pass (a value that looks like a
    placeholder is left as it is); other braces are left alone."""
    if "{" not in text:  # most arguments of most tasks: no need for the pattern
        return text

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "index":
            return str(slot.index)
        return slot.params.get(name, m.group(0))

    return _PLACEHOLDER.sub(value, text)
