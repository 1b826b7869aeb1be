"""Accounting on a master with a real store (SQLite and PostgreSQL): tasks run for known
durations on the master's clock; ``GET /api/v1/usage`` and the queries behind it sum them per
user and per group, clipped to the window, a running task counted until now."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.api.app import create_app
from corral.spec.jobs import JobSpec
from corral.spec.states import TaskState
from tests.master.sim import Sim

T0 = 1_800_000_000.0  # the sim's clock starts here
HOUR = 3600.0


def job(name: str, cpus: float, mem: int, array: str = "0") -> JobSpec:
    return JobSpec.model_validate(
        {"name": name, "array": array, "task": {"command": ["x"], "cpus": cpus, "mem": mem}}
    )


async def arrange(sim: Sim) -> None:
    """alice (physics): 2 cpus, 1 GiB for an hour, finished; another killed at once. bob (bio):
    1 cpu, 512 MiB from half past, still running at T0 + 2 h."""
    a1 = await sim.add_agent("a1", cpus=8, mem=8192)
    sim.master.jobs.submit(job("sim", 2, 1024, array="0-1"), "alice", "physics")
    sim.master.jobs.submit(job("fit", 1, 512), "bob", "bio")
    await sim.settle()
    a1.report("sim.1.0.0", TaskState.RUNNING)
    a1.report("sim.1.1.0", TaskState.RUNNING)
    sim.clock.t = T0 + 60
    a1.report("sim.1.1.0", TaskState.KILLED)
    sim.clock.t = T0 + 1800
    a1.report("fit.1.0.0", TaskState.RUNNING)
    sim.clock.t = T0 + HOUR
    a1.report("sim.1.0.0", TaskState.FINISHED)
    sim.clock.t = T0 + 2 * HOUR


@contextmanager
def admin(sim: Sim, tmp_path: Path, private: bool = False) -> Iterator[TestClient]:
    """A client of the sim's master as its admin (``private``: users read their own only)."""
    token = sim.master.ensure_admin_token(tmp_path / "admin.token")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(sim.master, private_reads=private), headers=headers) as client:
        yield client


def usage(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/api/v1/usage", params=params)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["name"],
        round(row["cpu_hours"], 6),
        round(row["mem_gib_hours"], 6),
        row["gpu_hours"],
        row["tasks"],
    )


def tasks(**n: int) -> dict[str, int]:
    return {o: n.get(o, 0) for o in ("finished", "failed", "killed", "lost", "preempted")}


def test_usage_sums_known_durations_per_user_and_group_within_the_window(
    sim: Sim, tmp_path: Path
) -> None:
    asyncio.run(arrange(sim))
    with admin(sim, tmp_path) as client:
        whole = usage(client, since=T0, until=T0 + 3 * HOUR)
        assert [figures(r) for r in whole["rows"]] == [
            # one hour of 2 cpus and 1 GiB, and a minute of another; one finished, one killed
            ("alice", round(2 + 2 / 60, 6), round(1 + 1 / 60, 6), 0, tasks(finished=1, killed=1)),
            # running since T0 + 30 min, counted until now (T0 + 2 h): 1.5 h
            ("bob", 1.5, 0.75, 0, tasks()),
        ]
        assert figures(whole["total"])[1:4] == (round(3.5 + 2 / 60, 6), round(1.75 + 1 / 60, 6), 0)

        # The second half of the first hour: alice's task half, bob's from its start.
        half = usage(client, since="2027-01-15T08:30:00Z", until="2027-01-15T09:00:00Z")
        assert half["since"] == "2027-01-15T08:30:00Z"
        assert [figures(r) for r in half["rows"]] == [
            ("alice", 1.0, 0.5, 0, tasks()),
            ("bob", 0.5, 0.25, 0, tasks()),
        ]
        assert usage(client, since=T0 + HOUR, until=T0 + HOUR + 1)["rows"][0]["tasks"] == tasks(
            finished=1
        )

        groups = usage(client, since=T0, until=T0 + 3 * HOUR, by="group")
        assert [(r["name"], round(r["cpu_hours"], 6)) for r in groups["rows"]] == [
            ("bio", 1.5),
            ("physics", round(2 + 2 / 60, 6)),
        ]
        # The default window is the last day until now.
        assert usage(client)["until"] == "2027-01-15T10:00:00Z"
        assert usage(client)["since"] == "2027-01-14T10:00:00Z"


def test_where_reads_are_private_a_user_sees_only_their_own_usage_an_admin_all(
    sim: Sim, tmp_path: Path
) -> None:
    asyncio.run(arrange(sim))
    with admin(sim, tmp_path, private=True) as client:
        assert client.post("/api/v1/users", json={"name": "bob"}).status_code == 201
        bob = client.post("/api/v1/tokens", json={"user": "bob"}).json()["token"]
        everyone = usage(client, since=T0, until=T0 + 3 * HOUR)
        client.headers["Authorization"] = f"Bearer {bob}"
        own = usage(client, since=T0, until=T0 + 3 * HOUR)
    assert [r["name"] for r in everyone["rows"]] == ["alice", "bob"]
    assert [r["name"] for r in own["rows"]] == ["bob"]
    assert own["total"]["cpu_hours"] == 1.5


@pytest.mark.parametrize(
    "params,field",
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2027-13-01"}, "until"),
        ({"by": "account"}, "by"),
        ({"since": T0 + 10, "until": T0}, "since"),
    ],
    ids=["a since that is no time", "an until that is no date", "by neither", "an empty window"],
)
def test_bad_windows_are_refused_naming_the_field(
    sim: Sim, tmp_path: Path, params: dict[str, Any], field: str
) -> None:
    with admin(sim, tmp_path) as client:
        r = client.get("/api/v1/usage", params=params)
    assert r.status_code in (400, 422), r.text
    assert field in r.text


def test_a_deleted_jobs_usage_stays_counted_with_its_group(sim: Sim, tmp_path: Path) -> None:
    asyncio.run(arrange(sim))
    with admin(sim, tmp_path) as client:
        before = usage(client, since=T0, until=T0 + 3 * HOUR, by="group")
        assert client.delete("/api/v1/jobs/sim").status_code == 204
        assert sim.store.tasks(job="sim") == []
        after = usage(client, since=T0, until=T0 + 3 * HOUR, by="group")
        # A window the deleted work ran in only in part is clipped as before.
        half = usage(client, since="2027-01-15T08:30:00Z", until="2027-01-15T09:00:00Z")
    assert after == before
    assert [figures(r) for r in half["rows"]] == [
        ("alice", 1.0, 0.5, 0, tasks()),
        ("bob", 0.5, 0.25, 0, tasks()),
    ]
