"""Services: desired against actual. Which tasks to start, which to stop, and whether a
deployment step is complete.

Pure, like the rest of the core: the master passes what it wants and what runs, and carries out
the decision. Two modes, after Marathon:

- **steady**: any live task counts as an instance, whatever configuration it runs; start the
  missing ones, stop the extra ones.
- **upgrade** (a deployment replaces the configuration): start tasks of the new configuration
  while at most ``instances × (1 + maximum_over_capacity)`` tasks are live, and stop old ones
  only while at least ``instances × minimum_health_capacity`` tasks stay ready.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Instance:
    """A live task of a service that nobody asked to stop."""

    id: str
    config: int  # the configuration it runs
    placed: bool  # on an agent (STAGING or later)
    running: bool
    ready: bool  # running, and healthy if the service has health checks
    order: float  # creation time: larger is younger


@dataclass(frozen=True, slots=True)
class Want:
    """What a service should be."""

    instances: int
    config: int
    upgrading: bool  # a deployment is replacing older configurations
    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now: start ``start`` tasks of the wanted configuration, stop ``stop``."""

    start: int
    stop: tuple[tuple[str, str], ...]  # (task id, reason)
    done: bool  # reality is what was wanted: a deployment step may complete

    @property
    def idle(self) -> bool:
        """True when there is nothing to do."""
        return self.start == 0 and not self.stop


def _stop_first(items: Sequence[Instance]) -> list[Instance]:
    """Cheapest to lose first: not yet placed, not running, not ready; then the youngest
    (Marathon's YOUNGEST_FIRST), so the long-proven tasks stay."""
    return sorted(items, key=lambda i: (i.placed, i.running, i.ready, -i.order, i.id))


def reconcile(want: Want, instances: Sequence[Instance]) -> Decision:
    """Decide for one service. Deterministic: the same input gives the same decision."""
    n = want.instances
    if not want.upgrading:
        extra = _stop_first(instances)[: max(0, len(instances) - n)]
        kept = [i for i in instances if i not in extra]
        return Decision(
            start=max(0, n - len(instances)),
            stop=tuple((i.id, "scaled down") for i in extra),
            done=len(kept) == n and all(i.ready for i in kept),
        )
    new = [i for i in instances if i.config == want.config]
    old = [i for i in instances if i.config != want.config]
    stop = [(i.id, "scaled down") for i in _stop_first(new)[: max(0, len(new) - n)]]
    new = _stop_first(new)[len(stop) :]
    most = max(n, math.floor(n * (1 + want.maximum_over_capacity)))
    least = math.ceil(n * want.minimum_health_capacity)
    if most == least and n > 0:
        # Rounding left no room either way (1 instance, 25% over capacity): like Marathon,
        # allow one task over capacity so the upgrade can move.
        most += 1
    start = max(0, min(n - len(new), most - len(new) - len(old)))
    # Old tasks that are not ready keep nobody served: they may go at once. Ready ones go only
    # while enough ready tasks remain.
    old_ready = [i for i in old if i.ready]
    ready = sum(i.ready for i in new) + len(old_ready)
    spare = max(0, ready - least)
    losing = [i for i in old if not i.ready] + _stop_first(old_ready)[:spare]
    stop.extend((i.id, f"replaced by configuration {want.config}") for i in losing)
    return Decision(
        start=start,
        stop=tuple(stop),
        done=not old and len(new) == n and all(i.ready for i in new),
    )


def launch_delay(failures: int, seconds: float, factor: float, most: float) -> float:
    """Seconds to wait before the next start after ``failures`` failures in a row."""
    if failures <= 0:
        return 0.0
    try:
        return min(most, seconds * factor ** (failures - 1))
    except OverflowError:  # a long streak of failures: the cap holds
        return most
