"""The wall around the policies: the standard library, the state enums, the pure reconciler and
the policies themselves; no store, no asyncio, no clock."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import corral.master.policy

PACKAGE = Path(corral.master.policy.__file__).parent
ALLOWED = ("corral.master.policy", "corral.spec.states", "corral.scheduler.reconcile")
FORBIDDEN = {
    "asyncio", "datetime", "os", "pathlib", "random", "secrets", "socket", "subprocess",
    "threading", "time", "uuid",
}  # fmt: skip
SOURCES = sorted(PACKAGE.glob("*.py"))


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("corral.master.policy" if node.level else node.module or "")
    return names


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_a_policy_imports_only_the_standard_library_and_pure_corral_modules(path: Path) -> None:
    for name in imported_modules(path):
        if name.startswith(ALLOWED):
            continue
        top = name.split(".")[0]
        assert top in sys.stdlib_module_names, f"{path.name} imports {name}"
        assert top not in FORBIDDEN, f"{path.name} imports {name}: no I/O, clock or randomness"
