"""The pure scheduling core: a read-only cluster snapshot and pending work in, a plan out.

Standard library only, no I/O, no clock, no randomness; see README.md for the pipeline.
"""

from corral.scheduler.model import (
    AgentSnapshot,
    Constraint,
    Operator,
    PlacedTask,
    Placement,
    Plan,
    Resources,
    Snapshot,
    Strategy,
    TaskRequest,
)
from corral.scheduler.planner import plan, plan_exhaustive

__all__ = [
    "AgentSnapshot",
    "Constraint",
    "Operator",
    "PlacedTask",
    "Placement",
    "Plan",
    "Resources",
    "Snapshot",
    "Strategy",
    "TaskRequest",
    "plan",
    "plan_exhaustive",
]
