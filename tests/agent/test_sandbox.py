"""Checks made before a task starts: its environment, working directory and program."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.agent.executors.base import LaunchError
from corral.agent.sandbox import DEFAULT_PATH, resolve_command, resolve_workdir, task_env
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
