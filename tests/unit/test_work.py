"""Task rows (``corral.master.work``): one per slot of a run, placeholders replaced, ids that read
``job.run.slot.attempt``; and the row of each retry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from corral.master.work import retry_of, task_id
from corral.master.work import run_tasks as task_rows
from corral.spec.jobs import JobSpec
from corral.store.rows import TaskRow
from corral.store.store import JSON_TEXT

NOW = 1_800_000_000.0


def stored(row: TaskRow) -> dict[str, Any]:
    """A task row as it is stored, its JSON columns read back."""
    values = row.values()
    return values | {c: json.loads(values[c]) for c in JSON_TEXT if values[c] is not None}


def run_tasks(spec: JobSpec, owner: str, run: int, now: float) -> list[dict[str, Any]]:
    """The rows of a new run as they are stored."""
    return [stored(row) for row in task_rows(spec, owner, run, now)]


def spec(**fields: Any) -> JobSpec:
    fields.setdefault("task", {"command": ["sim"]})
    return JobSpec.model_validate({"name": "sim", **fields})


def test_a_task_id_reads_job_run_slot_attempt() -> None:
    assert task_id("geant4.v2", 3, 17, 1) == "geant4.v2.3.17.1"


def test_a_run_has_one_pending_first_attempt_per_slot() -> None:
    rows = run_tasks(spec(array="3-4", params={"e": ["lo", "hi"]}, priority=5), "alice", 2, NOW)
    assert [(r["id"], r["slot"], r["idx"]) for r in rows] == [
        ("sim.2.0.0", 0, 3),
        ("sim.2.1.0", 1, 3),
        ("sim.2.2.0", 2, 4),
        ("sim.2.3.0", 3, 4),
    ]
    for r in rows:
        assert r["launch"]["task_id"] == r["id"] and r["launch"]["job"] == "sim"
        assert {k: r[k] for k in ("job", "run", "attempt", "latest", "state", "reason")} == {
            "job": "sim",
            "run": 2,
            "attempt": 0,
            "latest": True,
            "state": "PENDING",
            "reason": "",
        }
        assert (r["owner"], r["priority"], r["kill_requested"], r["created_at"]) == (
            "alice",
            5,
            False,
            NOW,
        )


def test_each_task_finds_its_ids_index_and_params_in_its_environment() -> None:
    rows = run_tasks(spec(array="5-6", params={"seed": ["a", "b"]}), "alice", 1, NOW)
    assert rows[3]["launch"]["env"] == {
        "CORRAL_TASK_ID": "sim.1.3.0",
        "CORRAL_JOB": "sim",
        "CORRAL_RUN": "1",
        "CORRAL_ARRAY_INDEX": "6",
        "CORRAL_PARAM_seed": "b",
        "MESOS_TASK_ID": "sim.1.3.0",
        "CHRONOS_JOB_NAME": "sim",
    }


def test_without_an_array_the_index_in_the_environment_is_the_slot() -> None:
    rows = run_tasks(spec(params={"e": ["1", "2", "3"]}), "alice", 1, NOW)
    assert [r["launch"]["env"]["CORRAL_ARRAY_INDEX"] for r in rows] == ["0", "1", "2"]


def test_placeholders_are_replaced_in_command_workdir_and_env_values() -> None:
    task = {
        "command": ["sim", "in_{index}.mac", "--energy={e}", "{other}"],
        "workdir": "runs/{e}/{index}",
        "env": {"OUT": "/data/{e}_{index}.root", "PLAIN": "${HOME} {x}"},
    }
    launch = run_tasks(spec(array="7", params={"e": ["10"]}, task=task), "alice", 1, NOW)[0][
        "launch"
    ]
    assert launch["command"] == ["sim", "in_7.mac", "--energy=10", "{other}"]
    assert launch["shell"] is None
    assert launch["workdir"] == "runs/10/7"
    assert launch["env"]["OUT"] == "/data/10_7.root"
    assert launch["env"]["PLAIN"] == "${HOME} {x}"


def test_placeholders_are_replaced_in_a_shell_line() -> None:
    task = {"shell": "echo {index} {e} | awk '{print $1}'"}
    rows = run_tasks(spec(array="1-2", params={"e": ["x"]}, task=task), "alice", 1, NOW)
    assert [r["launch"]["shell"] for r in rows] == [
        "echo 1 x | awk '{print $1}'",
        "echo 2 x | awk '{print $1}'",
    ]
    assert rows[0]["launch"]["command"] is None


def test_placeholders_are_replaced_in_volume_paths() -> None:
    task = {
        "docker": {
            "image": "geant4:11",
            "volumes": [{"hostPath": "/data/{e}/{index}", "containerPath": "/out/{index}"}],
        }
    }
    launch = run_tasks(spec(array="4", params={"e": ["hi"]}, task=task), "alice", 1, NOW)[0][
        "launch"
    ]
    volume = launch["docker"]["volumes"][0]
    assert (volume["host_path"], volume["container_path"]) == ("/data/hi/4", "/out/4")


def test_the_task_s_own_ids_win_over_the_same_names_in_the_spec_env() -> None:
    env = {"CORRAL_TASK_ID": "mine", "MESOS_TASK_ID": "mine", "CORRAL_ARRAY_INDEX": "9"}
    launch = run_tasks(spec(task={"command": ["x"], "env": env}), "alice", 1, NOW)[0]["launch"]
    assert launch["env"]["CORRAL_TASK_ID"] == launch["env"]["MESOS_TASK_ID"] == "sim.1.0.0"
    assert launch["env"]["CORRAL_ARRAY_INDEX"] == "0"


def test_the_resources_and_limits_of_the_template_reach_every_launch() -> None:
    task = {"command": ["x"], "cpus": 0.5, "mem": 256, "disk": 10, "max_runtime": 60.0}
    launch = run_tasks(spec(task=task), "alice", 1, NOW)[0]["launch"]
    assert (launch["cpus"], launch["mem"], launch["disk"], launch["max_runtime"]) == (
        0.5,
        256,
        10,
        60.0,
    )


# --- retries


@pytest.fixture
def failed() -> TaskRow:
    """A first attempt that ran and failed."""
    return task_rows(
        spec(array="2-3", params={"e": ["1"]}, task={"shell": "run {e}", "env": {"A": "b"}}),
        "alice",
        4,
        NOW,
    )[1]


def test_a_retry_is_the_next_attempt_under_a_new_id_waiting_for_its_backoff(
    failed: TaskRow,
) -> None:
    row = stored(retry_of(failed, NOW + 10, NOW + 12))
    old = stored(failed)
    assert (row["id"], row["attempt"]) == ("sim.4.1.1", 1)
    assert {k: row[k] for k in ("job", "run", "slot", "idx", "owner", "priority")} == {
        k: old[k] for k in ("job", "run", "slot", "idx", "owner", "priority")
    }
    assert row["placement"] == old["placement"]
    assert (row["state"], row["reason"], row["latest"], row["kill_requested"]) == (
        "PENDING",
        "",
        True,
        False,
    )
    assert (row["created_at"], row["not_before"]) == (NOW + 10, NOW + 12)
    assert "agent_id" not in row


def test_a_retry_launches_the_same_work_with_its_new_id_in_the_environment(
    failed: TaskRow,
) -> None:
    launch = stored(retry_of(failed, NOW, NOW))["launch"]
    old = stored(failed)["launch"]
    assert launch["task_id"] == "sim.4.1.1"
    assert launch["env"] == {
        **old["env"],
        "CORRAL_TASK_ID": "sim.4.1.1",
        "MESOS_TASK_ID": "sim.4.1.1",
    }
    assert launch["env"]["CORRAL_ARRAY_INDEX"] == "3" and launch["env"]["A"] == "b"
    assert {k: v for k, v in launch.items() if k not in ("task_id", "env")} == {
        k: v for k, v in old.items() if k not in ("task_id", "env")
    }


def test_a_retry_leaves_the_failed_row_as_it_was(failed: TaskRow) -> None:
    before = failed.values()
    retry_of(failed, NOW, NOW)
    assert failed.values() == before


def test_each_retry_of_a_retry_counts_on() -> None:
    row = task_rows(spec(), "alice", 1, NOW)[0]
    for attempt in (1, 2, 3):
        row = retry_of(row, NOW, NOW)
        launch = row.launch.unpack()
        assert row.id == launch.task_id == f"sim.1.0.{attempt}"
        assert launch.env["CORRAL_TASK_ID"] == f"sim.1.0.{attempt}"


# --- host ports


def test_a_batch_container_with_a_fixed_host_port_needs_that_port_like_a_service_does() -> None:
    task = {"docker": {"image": "web", "portMappings": [{"containerPort": 80, "hostPort": 18480}]}}
    rows = task_rows(spec(array="0-1", task=task), "alice", 1, NOW)
    assert [r.host_ports for r in rows] == [(18480,), (18480,)]
    assert retry_of(rows[0], NOW, NOW).host_ports == (18480,)


def test_ports_any_free_one_will_do_for_are_not_fixed() -> None:
    task = {"docker": {"image": "web", "portMappings": [{"containerPort": 80}]}}
    assert task_rows(spec(task=task), "alice", 1, NOW)[0].host_ports == ()
