"""An app's ``taskStats`` (``embed=app.taskStats``, ``apps.taskStats``, ``group.apps.taskStats``):
its tasks counted by condition, and how long the running ones have lived, in Marathon's four
groupings. A grouping without tasks is left out, as Marathon leaves it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from corral.api.service_render import counts_of
from corral.master.view import ServiceInfo, TaskInfo
from corral.spec.states import TaskState


def _since(version: str) -> float:
    """A Marathon version string (``2024-05-01T12:00:00.000Z``) as seconds since the epoch."""
    return datetime.fromisoformat(version.replace("Z", "+00:00")).timestamp()


def _stats(tasks: Sequence[TaskInfo], now: float) -> dict[str, Any]:
    c = counts_of(tasks)
    out: dict[str, Any] = {
        "counts": {
            "staged": c.staged,
            "running": c.running,
            "healthy": c.healthy,
            "unhealthy": c.unhealthy,
        }
    }
    lives = [
        now - t.started_at
        for t in tasks
        if t.state is TaskState.RUNNING and t.started_at is not None
    ]
    if lives:
        out["lifeTime"] = {
            "averageSeconds": statistics.fmean(lives),
            "medianSeconds": statistics.median(lives),
        }
    return {"stats": out}


def task_stats(rec: ServiceInfo, tasks: Sequence[TaskInfo], now: float) -> dict[str, Any]:
    """Marathon's ``taskStats`` of the app ``rec`` with its (wanted) tasks ``tasks``."""
    scaled = _since(rec.version)
    groups = {
        "startedAfterLastScaling": [t for t in tasks if t.created_at >= scaled],
        "withLatestConfig": [t for t in tasks if t.run == rec.config],
        "withOutdatedConfig": [t for t in tasks if t.run != rec.config],
        "totalSummary": list(tasks),
    }
    return {name: _stats(group, now) for name, group in groups.items() if group}
