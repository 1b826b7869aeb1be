"""Old sandboxes are removed; running tasks' and recent ones stay."""

import os
from pathlib import Path

from corral.agent import task_record
from corral.agent.sandboxes import collect

NOW = 1_900_000_000.0
DAY = 86400.0


def task_dir(tasks: Path, task_id: str, ended: float | None) -> Path:
    """A task's directory, its end recorded at ``ended`` if given."""
    root = tasks / task_id
    (root / "sandbox").mkdir(parents=True)
    (root / "sandbox" / "stdout").write_text("output\n")
    task_record.append(root, launch={"task_id": task_id})
    if ended is not None:
        task_record.append(root, end={"state": "FINISHED", "reason": "", "exit_code": 0})
        os.utime(task_record.path(root), (ended, ended))
    return root


def older_task_dir(tasks: Path, task_id: str, ended: float | None) -> Path:
    """A task's directory as agents before the record left it: its end a ``meta/done`` file."""
    root = tasks / task_id
    (root / "meta").mkdir(parents=True)
    (root / "sandbox").mkdir()
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


def test_directories_an_older_agent_left_are_collected_by_their_done_file(tmp_path: Path) -> None:
    old = older_task_dir(tmp_path, "old.1.0.0", NOW - 8 * DAY)
    recent = older_task_dir(tmp_path, "recent.1.0.0", NOW - 1 * DAY)
    running = older_task_dir(tmp_path, "running.1.0.0", None)
    assert collect(tmp_path, NOW, keep_for=7 * DAY) == ["old.1.0.0"]
    assert not old.exists()
    assert recent.exists() and running.exists()
