"""How the process executor turns a process's end into a task state and reason (pure helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.agent import task_record
from corral.agent.executors.base import TaskExit
from corral.agent.executors.process import (
    LOST_REASON,
    ExitStatus,
    describe_exit,
    parse_stat_start_time,
    recorded_exit,
    shell_status,
    signal_name,
)
from corral.spec.states import TaskState

FAILED, FINISHED, KILLED = TaskState.FAILED, TaskState.FINISHED, TaskState.KILLED


@pytest.mark.parametrize(
    ("status", "kill_reason", "oom_mib", "expected"),
    [
        pytest.param(
            ExitStatus(code=0), None, None, TaskExit(FINISHED, 0, "exited with status 0"),
            id="exit 0 finishes",
        ),
        pytest.param(
            ExitStatus(code=2), None, None, TaskExit(FAILED, 2, "exited with status 2"),
            id="a non-zero exit fails with its status",
        ),
        pytest.param(
            ExitStatus(code=127), None, None,
            TaskExit(FAILED, 127, "exited with status 127 (command not found)"),
            id="status 127 means the shell did not find the command",
        ),
        pytest.param(
            ExitStatus(code=126), None, None,
            TaskExit(FAILED, 126, "exited with status 126 (command not executable)"),
            id="status 126 means the shell could not execute it",
        ),
        pytest.param(
            ExitStatus(signal=11), None, None,
            TaskExit(FAILED, None, "terminated by signal SIGSEGV"),
            id="a signal nobody asked for fails naming the signal",
        ),
        pytest.param(
            ExitStatus(signal=15), "killed (SIGTERM)", None,
            TaskExit(KILLED, None, "killed (SIGTERM)"),
            id="a requested kill is KILLED",
        ),
        pytest.param(
            ExitStatus(code=0), "killed (SIGTERM)", None,
            TaskExit(KILLED, 0, "killed (SIGTERM)"),
            id="a task stopping cleanly on request is still KILLED",
        ),
        pytest.param(
            ExitStatus(signal=9), "killed (SIGKILL after grace)", 64,
            TaskExit(KILLED, None, "killed (SIGKILL after grace)"),
            id="a requested kill wins over an OOM kill",
        ),
        pytest.param(
            ExitStatus(signal=9), None, 64,
            TaskExit(FAILED, None, "memory limit exceeded (64 MiB)"),
            id="an OOM kill fails naming the memory limit",
        ),
        pytest.param(
            None, None, 64, TaskExit(FAILED, None, "memory limit exceeded (64 MiB)"),
            id="an OOM kill explains an end nobody saw",
        ),
        pytest.param(
            None, None, None, TaskExit(FAILED, None, LOST_REASON),
            id="an end nobody saw fails as lost",
        ),
    ],
)  # fmt: skip
def test_describe_exit(
    status: ExitStatus | None, kill_reason: str | None, oom_mib: int | None, expected: TaskExit
) -> None:
    assert describe_exit(status, kill_reason, oom_mib) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, ExitStatus(code=0)),
        (1, ExitStatus(code=1)),
        (128, ExitStatus(code=128)),
        (137, ExitStatus(signal=9)),
        (139, ExitStatus(signal=11)),
        (255, ExitStatus(code=255)),
    ],
)
def test_shell_status_decodes_128_plus_signal(code: int, expected: ExitStatus) -> None:
    assert shell_status(code) == expected


def test_signal_names_fall_back_to_the_number() -> None:
    assert signal_name(9) == "SIGKILL"
    assert signal_name(99) == "signal 99"


def test_the_start_time_is_found_even_if_the_command_name_holds_parentheses() -> None:
    stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 987654 10 11"
    assert parse_stat_start_time(stat) == 987654


def test_the_start_time_of_this_process_reads_from_proc() -> None:
    assert parse_stat_start_time(Path("/proc/self/stat").read_text()) > 0


def test_the_record_gives_the_status_the_wrapper_appended_or_none(tmp_path: Path) -> None:
    assert recorded_exit(tmp_path) is None
    task_record.append(tmp_path, launch={"task_id": "t"})
    assert recorded_exit(tmp_path) is None
    task_record.append(tmp_path, exit=3)
    assert recorded_exit(tmp_path) == ExitStatus(code=3)
    task_record.append(tmp_path, exit=143)
    assert recorded_exit(tmp_path) == ExitStatus(signal=15)
    with task_record.path(tmp_path).open("a") as record:
        record.write('{"exit":')  # cut short: skipped
    assert recorded_exit(tmp_path) == ExitStatus(signal=15)
