"""Checks made before a task starts: its environment, working directory and program."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.agent.executors.base import LaunchError
from corral.agent.sandbox import (
    DEFAULT_PATH,
    CommandCache,
    resolve_command,
    resolve_workdir,
    task_env,
)
from corral.spec.protocol import TaskLaunch


def launch(**fields: object) -> TaskLaunch:
    return TaskLaunch.model_validate({"task_id": "t-1", "job": "j", "cpus": 1, "mem": 64, **fields})


def test_the_env_is_minimal_the_tasks_own_values_win_and_the_sandbox_is_set_last() -> None:
    agent = {"PATH": "/agent/bin", "LANG": "C.UTF-8", "SECRET": "x"}
    spec = launch(env={"PATH": "/task/bin", "CORRAL_SANDBOX": "/elsewhere", "A": "1"})
    assert task_env(spec, Path("/sb"), agent) == {
        "PATH": "/task/bin",
        "LANG": "C.UTF-8",
        "CORRAL_TASK_ID": "t-1",
        "CORRAL_JOB": "j",
        "MESOS_TASK_ID": "t-1",
        "A": "1",
        "CORRAL_SANDBOX": "/sb",
        "MESOS_SANDBOX": "/sb",
    }


def test_an_agent_without_path_gives_tasks_the_default_path() -> None:
    assert task_env(launch(), Path("/sb"), {})["PATH"] == DEFAULT_PATH


def test_the_workdir_defaults_to_the_sandbox_and_may_be_absolute(tmp_path: Path) -> None:
    assert resolve_workdir(launch(), tmp_path) == tmp_path
    assert resolve_workdir(launch(workdir="/tmp"), tmp_path) == Path("/tmp")


def test_programs_are_searched_in_path_and_names_with_a_slash_in_the_workdir(
    tmp_path: Path,
) -> None:
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert resolve_command("tool", f"/nonexistent:{tool.parent}", tmp_path) == str(tool)
    assert resolve_command("./bin/tool", "", tmp_path) == str(tool)
    assert resolve_command("echo", DEFAULT_PATH, tmp_path).endswith("/echo")  # not the builtin


def test_a_program_that_is_missing_or_not_executable_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("x")
    with pytest.raises(LaunchError, match="^not executable: data$"):
        resolve_command("data", str(tmp_path), tmp_path)
    with pytest.raises(LaunchError, match="^command not found: nope$"):
        resolve_command("nope", os.defpath, tmp_path)
    with pytest.raises(LaunchError, match="command not found"):
        resolve_command("", os.defpath, tmp_path)


class Ticks:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def program(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    tool = where / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    return tool


def test_a_program_found_is_taken_again_until_its_entry_expires_or_it_is_gone(
    tmp_path: Path,
) -> None:
    early, late = tmp_path / "early", tmp_path / "late"
    early.mkdir()
    search = f"{early}:{late}"
    ticks = Ticks()
    commands = CommandCache(ttl=10.0, now=ticks)
    installed = program(late)
    assert commands.resolve("tool", search, tmp_path) == str(installed)
    # Installed earlier in PATH: a shell's hash would keep the old one too, until it expires.
    program(early)
    ticks.now = 9.0
    assert commands.resolve("tool", search, tmp_path) == str(late / "tool")
    ticks.now = 10.5
    assert commands.resolve("tool", search, tmp_path) == str(early / "tool")
    (early / "tool").unlink()  # gone: looked up again at once
    assert commands.resolve("tool", search, tmp_path) == str(late / "tool")
    (late / "tool").unlink()
    with pytest.raises(LaunchError, match="^command not found: tool$"):
        commands.resolve("tool", search, tmp_path)


def test_a_lookup_relative_to_the_working_directory_is_never_kept(tmp_path: Path) -> None:
    commands = CommandCache(ttl=10.0, now=Ticks())
    one, two = tmp_path / "one", tmp_path / "two"
    program(one / "bin")
    program(two / "bin")
    # Through a relative PATH entry, and through a name with a slash: both per workdir.
    assert commands.resolve("tool", "bin", one) == str(one / "bin" / "tool")
    assert commands.resolve("tool", "bin", two) == str(two / "bin" / "tool")
    assert commands.resolve("./bin/tool", "", one) == str(one / "bin" / "tool")
    assert commands.resolve("./bin/tool", "", two) == str(two / "bin" / "tool")
