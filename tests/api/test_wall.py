"""The wall around the master, seen from the API: routes read through ``master.queries`` and
write through the master's commands; nothing under ``corral/api`` reaches its state or store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import corral.api
import corral.store.store

PACKAGE = Path(corral.api.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))

# What the API may use of a Master: the reads, the event bus, commands, the master as a
# user whose reads are private sees it, and who leads (a follower hands calls to the leader).
MASTER_ATTRIBUTES = {
    "queries", "bus", "jobs", "services", "agents", "accounts",
    "kill_job", "kill_task", "kill_service_tasks", "read_file", "list_files", "private_to",
    "execs", "leading", "leader_url", "url",
}  # fmt: skip
# The commands of the master's parts (writes, and the agent channel's messages).
COMMANDS = {
    "jobs": {"submit", "apply", "start_run", "delete"},
    "services": {"deploy", "scale", "restart", "delete", "cancel", "reset_delay"},
    "agents": {"drain", "hello", "hung_up", "report", "heartbeat"},
    # commands run in tasks: corral exec's, and the agents' frames of them
    "execs": {
        "open",
        "input",
        "resize",
        "close",
        "output",
        "exited",
        "rsh_open",
        "rsh_cancel",
        "agent_gone",
    },  # fmt: skip
    "accounts": {
        "authenticate",
        "add_user",
        "change_user",
        "remove_user",
        "add_group",
        "change_group",
        "remove_group",
        "add_members",
        "remove_members",
        "create_token",
        "revoke_token",
    },
}


def _is_master(node: ast.expr) -> bool:
    """``master``, or ``<anything>.master`` (``page.master``, ``self.master``)."""
    if isinstance(node, ast.Name):
        return node.id == "master"
    return isinstance(node, ast.Attribute) and node.attr == "master"


def reaches_in(tree: ast.AST) -> list[str]:
    """Every use of a master that is not a query or a command, as ``line: master.x.y``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _is_master(node.value):
            continue
        part = node.attr
        if part not in MASTER_ATTRIBUTES:
            found.append(f"{node.lineno}: master.{part}")
        elif part in COMMANDS:
            parent = next(
                (p for p in ast.walk(tree) if isinstance(p, ast.Attribute) and p.value is node),
                None,
            )
            if parent is None or parent.attr not in COMMANDS[part]:
                used = "" if parent is None else f".{parent.attr}"
                found.append(f"{node.lineno}: master.{part}{used}")
    return sorted(found, key=lambda f: int(f.split(":")[0]))


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_api_module_reads_the_master_only_through_its_queries(path: Path) -> None:
    assert reaches_in(ast.parse(path.read_text(), str(path))) == []


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_api_module_uses_no_store_and_no_cluster_state(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            assert node.attr != "store", f"{path.name}:{node.lineno} reads a store"
        if isinstance(node, ast.ImportFrom) and node.module == "corral.store.store":
            # Its errors are answered (a full disk as a 507); nothing else of the store is used.
            for alias in node.names:
                imported = getattr(corral.store.store, alias.name)
                assert issubclass(imported, Exception), f"{path.name} imports {alias.name}"
        if isinstance(node, ast.ImportFrom):
            assert node.module != "corral.master.state", f"{path.name} imports the state"


def test_the_wall_finds_a_route_reaching_into_the_master() -> None:
    tree = ast.parse(
        "def route(master):\n"
        "    master.state.tasks.get('t')\n"
        "    page.master.store.task('t')\n"
        "    master.services.services.get('/a')\n"
        "    master.queries.task_row('t')\n"
        "    master.services.deploy([], 'ann')\n"
    )
    assert reaches_in(tree) == ["2: master.state", "3: master.store", "4: master.services.services"]
