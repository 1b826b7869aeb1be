"""Removing the sandboxes of tasks that ended long ago, so that an agent's disk does not fill up.

A task's directory stays while the task runs and for ``keep_for`` seconds after it ended (the end
in its record), so that its logs and files can still be read; then it goes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from corral.agent import task_record


def collect(tasks_dir: Path, now: float, keep_for: float) -> list[str]:
    """Remove the directories of tasks that ended more than ``keep_for`` seconds before ``now``.

    Answers the ids of the tasks removed. Tasks that run (no end recorded) are never touched.
    """
    removed: list[str] = []
    if not tasks_dir.is_dir():
        return removed
    for root in sorted(tasks_dir.iterdir()):
        ended = task_record.read(root).ended_at
        if ended is None:
            continue  # still running, or not a task directory
        if now - ended > keep_for:
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root.name)
    return removed
