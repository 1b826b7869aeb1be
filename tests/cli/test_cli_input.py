"""The CLI without a real master: options become specs, bad input is refused before sending."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from corral.cli.context import InvalidInput
from corral.cli.main import app
from corral.cli.specs import command_fields, params_from_options
from tests.cli.fake_master import serving
from tests.cli.samples import job_view
from tests.support.cluster import free_port


def nowhere(*args: str) -> Result:
    """Run the CLI pointed at a port nobody listens on: any request would fail with exit 1."""
    env = {"CORRAL_URL": f"http://127.0.0.1:{free_port()}", "CORRAL_TOKEN": "t"}
    return CliRunner(env=env).invoke(app, list(args))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[httpx.Request]]:
    """Requests the CLI sends to a fake master that accepts every job (at CORRAL_URL)."""
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        name = json.loads(request.content)["name"] if request.content else "j"
        return httpx.Response(201, json=job_view(name).model_dump(mode="json"))

    with serving(handle) as url:
        monkeypatch.setenv("CORRAL_URL", url)
        monkeypatch.delenv("CORRAL_TOKEN", raising=False)
        yield requests


def test_arguments_are_an_argv_unless_shell_is_asked_for() -> None:
    assert command_fields(["ls", "-l"], shell=False) == {"command": ["ls", "-l"]}
    assert command_fields(["echo", "$HOME"], shell=True) == {"shell": "echo $HOME"}


def test_a_single_argument_with_spaces_is_a_shell_line() -> None:
    assert command_fields(["make && ./test"], shell=False) == {"shell": "make && ./test"}


def test_repeated_params_add_values_and_a_param_without_equals_is_refused() -> None:
    assert params_from_options(["N=a,b", "M=1", "N=c"]) == {"N": ["a", "b", "c"], "M": ["1"]}
    with pytest.raises(InvalidInput, match="expected NAME=VALUE"):
        params_from_options(["N"])


def test_run_sends_the_options_as_a_spec_and_everything_after_cmd_as_its_argv(
    sent: list[httpx.Request],
) -> None:
    result = CliRunner().invoke(
        app,
        ["run", "--name", "x", "--cpus", "2", "--env", "A=1=2"]
        + ["--array", "0-4", "ls", "-l", "--cpus", "9"],
    )
    assert result.exit_code == 0, result.output
    spec = json.loads(sent[0].content)
    assert spec["name"] == "x" and spec["array"] == "0-4"
    assert spec["task"] == {
        "command": ["ls", "-l", "--cpus", "9"],
        "env": {"A": "1=2"},
        "cpus": 2.0,
        "mem": 128,
        "disk": 0,
        "gpus": 0,
        "kill_grace": 10.0,
        "driver": "process",
    }
    assert result.stdout == "x: run 1 started, 2 tasks\n"


def test_run_asks_for_gpus_per_task(sent: list[httpx.Request]) -> None:
    result = CliRunner().invoke(app, ["run", "--name", "train", "--gpus", "2", "--", "train"])
    assert result.exit_code == 0, result.output
    assert json.loads(sent[0].content)["task"]["gpus"] == 2


def test_run_without_a_name_generates_one(sent: list[httpx.Request]) -> None:
    result = CliRunner().invoke(app, ["run", "--json", "--", "true"])
    assert result.exit_code == 0, result.output
    assert json.loads(sent[0].content)["name"].startswith("run-")
    assert json.loads(result.stdout)["name"].startswith("run-")


def test_an_invalid_spec_names_the_field_and_exits_2_without_a_request() -> None:
    result = nowhere("run", "--cpus", "-1", "--", "true")
    assert result.exit_code == 2
    assert result.stderr == "error: task.cpus: Input should be greater than 0\n"


def test_a_malformed_option_value_exits_2() -> None:
    result = nowhere("run", "--env", "NOEQUALS", "true")
    assert result.exit_code == 2
    assert "--env 'NOEQUALS': expected NAME=VALUE" in result.stderr


def test_apply_checks_every_spec_of_a_file_before_sending_any(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        '- name: ok\n  task: {command: ["true"]}\n- name: bad\n  task: {shell: "true", mem: 0}\n'
    )
    result = nowhere("apply", "-f", str(path))
    assert result.exit_code == 2
    assert f"{path}[1]: task.mem: Input should be greater than or equal to 1" in result.stderr


def test_apply_of_a_file_that_is_not_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    result = nowhere("apply", "-f", str(path))
    assert result.exit_code == 2
    assert f"{path} is not valid YAML" in result.stderr


def test_an_unreachable_master_is_an_error_with_exit_1() -> None:
    result = nowhere("jobs")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the corral master at http://127.0.0.1:")
    assert "is not reachable" in result.stderr


@pytest.mark.parametrize("value", ["0", "soon", "-1d"])
def test_a_fair_share_half_life_that_is_no_duration_exits_2_naming_the_option(value: str) -> None:
    for command in ("master", "up"):
        result = nowhere(command, "--fairshare-half-life", value)
        assert result.exit_code == 2
        assert "--fairshare-half-life" in result.stderr and repr(value) in result.stderr


def test_a_preemption_threshold_that_is_no_duration_exits_2_naming_the_option() -> None:
    result = nowhere("master", "--preemption", "--preempt-after", "soon")
    assert result.exit_code == 2
    assert "--preempt-after" in result.stderr and "'soon'" in result.stderr
