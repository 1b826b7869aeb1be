"""``corral run`` against a real ``corral up``: waiting, exit statuses, arrays, sweeps, logs."""

from __future__ import annotations

import json

import pytest

from tests.cli.harness import Corral, ok, tasks_of

pytestmark = pytest.mark.integration


def outputs(corral: Corral, job: str) -> list[str]:
    """The stdout of every task of the job, stripped."""
    return [ok(corral("logs", t["id"])).strip() for t in tasks_of(corral, job)]


def test_a_command_run_with_wait_exits_0_and_logs_show_its_stdout(
    corral: Corral, job_name: str
) -> None:
    out = ok(corral("run", "--name", job_name, "--wait", "--", "echo", "hello from corral"))
    assert f"run 1 of {job_name} SUCCEEDED" in out
    [task] = tasks_of(corral, job_name)
    assert task["state"] == "FINISHED" and task["exit_code"] == 0
    assert ok(corral("logs", task["id"])) == "hello from corral\n"


def test_a_failing_command_run_with_wait_exits_1_and_names_the_failed_task(
    corral: Corral, job_name: str
) -> None:
    result = corral("run", "--name", job_name, "--wait", "--shell", "--", "echo oops >&2; exit 3")
    assert result.exit_code == 1, result.output
    assert f"run 1 of {job_name} FAILED" in result.stdout
    [task] = tasks_of(corral, job_name)
    assert task["exit_code"] == 3
    assert task["id"] in result.stdout
    assert ok(corral("logs", task["id"], "--stderr")) == "oops\n"


def test_an_array_of_5_runs_5_tasks_each_with_its_own_array_index(
    corral: Corral, job_name: str
) -> None:
    script = "echo $CORRAL_ARRAY_INDEX"
    ok(corral("run", "--name", job_name, "--array", "0-4", "--wait", "--shell", "--", script))
    tasks = tasks_of(corral, job_name)
    assert [t["state"] for t in tasks] == ["FINISHED"] * 5
    assert sorted(outputs(corral, job_name)) == ["0", "1", "2", "3", "4"]


def test_a_param_sweep_substitutes_each_value_into_the_command(
    corral: Corral, job_name: str
) -> None:
    args = ["--param", "COLOR=red,green", "--param", "N=1,2"]
    ok(corral("run", "--name", job_name, *args, "--wait", "--", "echo", "{COLOR}-{N}"))
    assert sorted(outputs(corral, job_name)) == ["green-1", "green-2", "red-1", "red-2"]


def test_run_with_wait_and_json_prints_the_finished_run(corral: Corral, job_name: str) -> None:
    run = json.loads(ok(corral("run", "--name", job_name, "--wait", "--json", "--", "true")))
    assert run["job"] == job_name and run["state"] == "SUCCEEDED"
    assert run["counts"]["FINISHED"] == run["total"] == 1


def test_logs_follow_prints_the_whole_log_once_the_task_ends(corral: Corral, job_name: str) -> None:
    ok(corral("run", "--name", job_name, "--shell", "--", "echo a; sleep 1; echo b"))
    [task] = tasks_of(corral, job_name)
    assert ok(corral("logs", "-f", task["id"])) == "a\nb\n"


def test_a_job_deleted_and_run_again_under_its_name_runs_anew_with_its_own_output(
    corral: Corral, job_name: str
) -> None:
    ok(corral("run", "--name", job_name, "--wait", "--", "echo", "first"))
    ok(corral("job", "rm", job_name))
    out = ok(corral("run", "--name", job_name, "--wait", "--", "echo", "second"))
    assert f"run 2 of {job_name} SUCCEEDED" in out  # not a second "run 1", wedged on the agent
    [task] = tasks_of(corral, job_name)
    assert task["id"] == f"{job_name}.2.0.0"
    assert ok(corral("logs", task["id"])) == "second\n"


def test_logs_that_are_not_utf_8_are_printed_byte_for_byte(corral: Corral, job_name: str) -> None:
    ok(corral("run", "--name", job_name, "--wait", "--shell", "--", "printf 'a\\377b\\n'"))
    [task] = tasks_of(corral, job_name)
    assert corral("logs", task["id"]).stdout_bytes == b"a\xffb\n"
