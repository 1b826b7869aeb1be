"""The applier is the one writer of what the master decides: no other module of the master
writes a task's or a run's row. Ops modules write desired state (jobs, services, deployments,
agents' registrations) and hand everything that follows to the applier."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import corral.master

MASTER = Path(corral.master.__file__).parent
# The store's writes of tasks and runs (corral/store/store.py, Tx).
TASK_AND_RUN_WRITES = {"insert_tasks", "update_task", "place_tasks", "insert_run", "update_run"}


def writes_in(path: Path) -> list[str]:
    """``name:line`` of each call of a task or run write in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in TASK_AND_RUN_WRITES
        ):
            found.append(f"{node.func.attr}:{node.lineno}")
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(MASTER.rglob("*.py")) if p.name != "applier.py"],
    ids=lambda p: str(p.relative_to(MASTER)),
)
def test_no_module_but_the_applier_writes_tasks_or_runs(path: Path) -> None:
    assert writes_in(path) == []


def test_the_applier_does_write_them() -> None:
    """The scan above would pass on a renamed store API: it must find the applier's writes."""
    assert {w.split(":")[0] for w in writes_in(MASTER / "applier.py")} == TASK_AND_RUN_WRITES
