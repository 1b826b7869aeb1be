"""``corral usage`` against a real ``corral up``: a new user's tasks run real processes, and the
usage counts exactly their recorded running times times their resources, per user and per
group, with their outcomes; a window before they ran shows nothing of them."""

from __future__ import annotations

import json
import secrets
from datetime import datetime

import pytest
from typer.testing import CliRunner, Result

from corral.cli.main import app
from tests.cli.harness import Corral, Server, ok, tasks_of

pytestmark = pytest.mark.integration


def as_user(server: Server, token: str, *args: str) -> Result:
    runner = CliRunner(env={"CORRAL_URL": server.url, "CORRAL_TOKEN": token})
    return runner.invoke(app, list(args))


def row_of(found: dict[str, object], name: str) -> dict[str, object]:
    rows = [r for r in found["rows"] if r["name"] == name]  # type: ignore[attr-defined]
    assert len(rows) == 1, found
    row: dict[str, object] = rows[0]
    return row


def test_usage_counts_a_users_tasks_by_their_running_time_and_outcome(
    corral: Corral, server: Server
) -> None:
    name, group = f"u{secrets.token_hex(3)}", f"g{secrets.token_hex(3)}"
    ok(corral("group", "add", group))
    token = ok(corral("user", "add", name, "--group", group)).splitlines()[-1]
    run = ("run", "--wait", "--cpus", "0.5", "--mem", "256")
    ok(as_user(server, token, *run, "--name", f"{name}-ok", "--", "sleep", "1"))
    failed = as_user(server, token, *run, "--name", f"{name}-bad", "--", "sh", "-c", "exit 3")
    assert failed.exit_code == 1

    tasks = tasks_of(corral, f"{name}-ok") + tasks_of(corral, f"{name}-bad")
    seconds = sum(
        (
            datetime.fromisoformat(t["finished_at"]) - datetime.fromisoformat(t["started_at"])
        ).total_seconds()
        for t in tasks
    )
    # The sleep ran for a second; its times are the agent's, each taken a few ms after the fact
    # it stamps (the keeper's answer, its exit notice), so they may span a little less (a CI
    # run read 0.995 s).
    assert seconds >= 0.9
    found = json.loads(ok(corral("usage", "--since", "1h", "--json")))
    mine = row_of(found, name)
    # The tasks' times as the test reads them are whole microseconds, four of them: the running
    # time it sums may be off by 4 µs from the one the master counted (a run failed at 1.2 µs).
    off = 4e-6 / 3600
    assert mine["cpu_hours"] == pytest.approx(0.5 * seconds / 3600, rel=1e-6, abs=0.5 * off)
    assert mine["mem_gib_hours"] == pytest.approx(0.25 * seconds / 3600, rel=1e-6, abs=0.25 * off)
    assert mine["gpu_hours"] == 0
    assert mine["tasks"] == {"finished": 1, "failed": 1, "killed": 0, "lost": 0, "preempted": 0}

    by_group = json.loads(ok(corral("usage", "--since", "1h", "--by", "group", "--json")))
    assert row_of(by_group, group)["cpu_hours"] == mine["cpu_hours"]
    # The user reads the same of themselves; the table names them with their figures.
    table = ok(as_user(server, token, "usage", "--since", "1h"))
    assert name in table and "TOTAL" in table

    before = json.loads(ok(corral("usage", "--since", "2000-01-01", "--until", "2000-01-02",
                                  "--json")))  # fmt: skip
    assert before["rows"] == [] and before["total"]["cpu_hours"] == 0


def test_a_window_that_is_no_time_exits_2_naming_the_option(corral: Corral) -> None:
    result = corral("usage", "--since", "last tuesday")
    assert result.exit_code == 2 and "--since" in result.stderr
    result = corral("usage", "--since", "1h", "--until", "2h")
    assert result.exit_code == 2 and "--since" in result.stderr
