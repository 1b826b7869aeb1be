"""Old sandboxes are removed; running tasks' and recent ones stay."""

import os
from pathlib import Path

from corral.agent.sandboxes import collect

NOW = 1_900_000_000.0
DAY = 86400.0


def task_dir(tasks: Path, task_id: str, ended: float | None) -> Path:
    root = tasks / task_id
    (root / "meta").mkdir(parents=True)
    (root / "sandbox").mkdir()
    (root / "sandbox" / "stdout").write_text("output\n")
    if ended is not None:
        done = root / "meta" / "done"
        done.touch()
        os.utime(done, (ended, ended))
    return root


def test_only_sandboxes_of_tasks_that_ended_before_the_limit_are_removed(tmp_path: Path) -> None:
    old = task_dir(tmp_path, "old.1.0.0", NOW - 8 * DAY)
    recent = task_dir(tmp_path, "recent.1.0.0", NOW - 1 * DAY)
    running = task_dir(tmp_path, "running.1.0.0", None)
    assert collect(tmp_path, NOW, keep_for=7 * DAY) == ["old.1.0.0"]
    assert not old.exists()
    assert recent.exists() and running.exists()


def test_a_missing_tasks_directory_is_nothing_to_collect(tmp_path: Path) -> None:
    assert collect(tmp_path / "absent", NOW, keep_for=0) == []


def test_a_limit_of_zero_removes_every_ended_task_at_once(tmp_path: Path) -> None:
    task_dir(tmp_path, "a.1.0.0", NOW - 1)
    task_dir(tmp_path, "b.1.0.0", None)
    assert collect(tmp_path, NOW, keep_for=0) == ["a.1.0.0"]
