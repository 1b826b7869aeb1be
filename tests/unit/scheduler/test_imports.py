"""The wall around the core: it imports the standard library and itself, nothing else."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import corral.scheduler

PACKAGE = Path(corral.scheduler.__file__).parent
# Standard modules that would bring I/O, a clock, randomness or concurrency into the core.
FORBIDDEN = {
    "asyncio", "datetime", "os", "pathlib", "random", "secrets", "shutil", "socket",
    "subprocess", "threading", "time", "urllib", "uuid",
}  # fmt: skip


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("corral.scheduler" if node.level else node.module or "")
    return names


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_package_has_the_modules_the_readme_describes() -> None:
    assert {p.stem for p in SOURCES} >= {
        "model", "feasibility", "scoring", "fairshare", "selection", "cohorts", "state",
        "permit", "preempt", "planner", "harness", "invariants",
    }  # fmt: skip


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_core_module_imports_only_the_standard_library_and_the_core(path: Path) -> None:
    for name in imported_modules(path):
        top = name.split(".")[0]
        if name == "corral.scheduler" or name.startswith("corral.scheduler."):
            continue
        assert top in sys.stdlib_module_names, f"{path.name} imports {name}"
        assert top not in FORBIDDEN, f"{path.name} imports {name}: no I/O, clock or randomness"
