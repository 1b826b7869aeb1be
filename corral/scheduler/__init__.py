"""The pure scheduling core: a read-only cluster snapshot and pending work in, a plan out.

Standard library only, no I/O, no clock, no randomness; see README.md for the pipeline.
"""

from corral.scheduler.model import (
    AgentSnapshot,
    Code,
    Constraint,
    Operator,
    PlacedTask,
    Placement,
    Plan,
    Preemption,
    Quota,
    Resources,
    Snapshot,
    Status,
    Stop,
    Strategy,
    TaskRequest,
)
from corral.scheduler.planner import plan, plan_exhaustive

__all__ = [
    "AgentSnapshot",
    "Code",
    "Constraint",
    "Operator",
    "PlacedTask",
    "Placement",
    "Plan",
    "Preemption",
    "Quota",
    "Resources",
    "Snapshot",
    "Status",
    "Stop",
    "Strategy",
    "TaskRequest",
    "plan",
    "plan_exhaustive",
]
