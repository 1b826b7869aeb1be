"""A store written by an older Corral may hold specs that today's admission refuses (a NUL byte,
a period under a second). The master still starts, lists and shows them, and a schedule it can
no longer handle is parked with the reason instead of spinning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from corral.api.app import create_app
from corral.master.master import Master
from corral.store.store import Store
from tests.api.conftest import FixedClock

NOW = 1_800_000_000.0
OLD_JOBS: dict[str, dict[str, Any]] = {
    "nul": {"name": "nul", "task": {"command": ["echo", "a\x00b"], "env": {"X": "1\x002"}}},
    "spin": {
        "name": "spin",
        "schedule": "R/2027-01-01T00:00:00Z/PT0.0001S",
        "task": {"shell": "true"},
    },
}


def store_of_an_older_version(tmp_path: Path) -> Store:
    """Jobs written straight into the store, as a Corral that admitted them did."""
    store = Store.in_dir(tmp_path)
    store.migrate()
    with store.tx() as tx:
        for name, spec in OLD_JOBS.items():
            tx.insert_job(
                name=name,
                owner="admin",
                spec={"kind": "job", **spec},
                runs=0,
                created_at=NOW,
                updated_at=NOW,
                anchor=NOW if name == "spin" else None,
                next_due=NOW if name == "spin" else None,
                next_index=0 if name == "spin" else None,
            )
        # A task of the old job, waiting, its launch holding what the job held.
        launch = {"task_id": "nul.1.0.0", "job": "nul", "cpus": 0.1, "mem": 32}
        launch["docker"] = {"image": "busybox", "parameters": [{"key": "label", "value": "a\x00"}]}
        row = {"id": "nul.1.0.0", "job": "nul", "run": 1, "slot": 0, "idx": 0, "attempt": 0}
        tx.insert_tasks(
            [
                {
                    **row,
                    "latest": True,
                    "state": "PENDING",
                    "reason": "",
                    "owner": "admin",
                    "priority": 0,
                    # Tx.insert_tasks takes the JSON columns as JSON text, as TaskRow makes them.
                    "launch": json.dumps(launch),
                    "placement": json.dumps({"strategy": "binpack", "constraints": []}),
                    "kill_requested": False,
                    "created_at": NOW,
                }
            ]
        )
    return store


def test_a_master_on_a_store_with_specs_admitted_by_older_rules_starts_and_shows_them(
    tmp_path: Path,
) -> None:
    store = store_of_an_older_version(tmp_path)
    master = Master(store, FixedClock(NOW))
    master.agents.load()
    master.state.load()  # raised ValidationError before: the master could not start
    assert set(master.state.tasks) == {"nul.1.0.0"}
    master.services.load()
    token = master.ensure_admin_token(tmp_path / "admin.token")
    with TestClient(create_app(master), headers={"Authorization": f"Bearer {token}"}) as api:
        listed = api.get("/api/v1/jobs")
        assert listed.status_code == 200
        assert {j["name"] for j in listed.json()} == {"nul", "spin"}
        assert api.get("/api/v1/jobs/nul").json()["spec"]["task"]["env"] == {"X": "1\x002"}
        assert api.get("/scheduler/jobs").status_code == 200
    # The schedule it can no longer handle is parked with the reason, not fired.
    assert master.timers.fire_due() == 0
    spin = store.job("spin")
    assert spin is not None and spin["next_due"] is None
    (skip,) = [e for e in store.events_since(0) if e["type"] == "run_skipped"]
    assert "shorter than the minimum of 1 second" in skip["reason"]
    store.close()
