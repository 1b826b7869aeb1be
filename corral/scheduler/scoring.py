"""Ranking: how good a feasible agent is for a task, as a score in [0, 1] (higher is better).

The score is Nomad's bin-packing fit over cpu and mem: with ``f`` the free fraction of a resource
after the placement, ``s = 10**f_cpu + 10**f_mem`` runs from 2 (both full) to 20 (both empty).
The exponent makes one nearly full resource count more than two half-full ones, so BINPACK fills
an agent along both axes before opening another, and SPREAD evens load out the same way.
Equal scores are broken by agent id, outside this module (the planner orders candidates by id).
"""

from __future__ import annotations

import math

from corral.scheduler.model import Resources, Strategy


def _free_fraction(free_after: int, total: int) -> float:
    # An agent without any of a resource counts as full of it: nothing left to spread onto.
    return free_after / total if total > 0 else 0.0


def fit_score(strategy: Strategy, total: Resources, free: Resources, request: Resources) -> float:
    """Score putting ``request`` on an agent with ``total`` capacity and ``free`` left now.

    BINPACK prefers the agent that is fullest after the placement, SPREAD the emptiest. The
    caller has checked that the request fits; the result is deterministic for equal inputs.
    """
    cpu = _free_fraction(free.millicpus - request.millicpus, total.millicpus)
    mem = _free_fraction(free.mem - request.mem, total.mem)
    spread = math.pow(10.0, cpu) + math.pow(10.0, mem)
    score = (20.0 - spread) / 18.0 if strategy == Strategy.BINPACK else (spread - 2.0) / 18.0
    return min(1.0, max(0.0, score))
