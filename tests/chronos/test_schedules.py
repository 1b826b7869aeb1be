"""Chronos scheduling as Chronos users rely on it, posted unchanged through ``/scheduler/...``
with an injected clock: starts a little in the past, re-posting, periods, time zones, R0,
container paths, job names and manual runs of disabled jobs. No agent runs, so runs stay
pending; a run is ended by killing it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.master.master import Master
from tests.api.conftest import FixedClock


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def geant4(name: str, schedule: str, **extra: Any) -> dict[str, Any]:
    """One job of the physicists' loop, as their template writes it."""
    return {
        "name": name,
        "schedule": schedule,
        "owner": "physics@example.org",
        "cpus": "0.5",
        "mem": "512",
        "shell": True,
        "command": f"echo {name}",
        **extra,
    }


def post(api: TestClient, body: dict[str, Any]) -> None:
    r = api.post("/scheduler/iso8601", json=body)
    assert r.status_code == 204, r.text


def listed(api: TestClient, name: str) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = api.get("/scheduler/jobs").json()
    [job] = [j for j in jobs if j["name"] == name]
    return job


def runs_of(api: TestClient, name: str) -> int:
    return int(api.get(f"/api/v1/jobs/{name}").json()["runs"])


@pytest.fixture
def clock(master: Master) -> FixedClock:
    c = master.state.clock
    assert isinstance(c, FixedClock)
    return c


def test_a_start_five_seconds_in_the_past_runs_once(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-03-01T12:00:05+00:00")
    post(api, geant4("sim-1", "R1/2027-03-01T12:00:00.000Z/PT10M"))
    assert master.timers.fire_due() == 1
    clock.t += 3600
    assert master.timers.fire_due() == 0
    assert runs_of(api, "sim-1") == 1


def test_posting_an_identical_run_once_job_again_runs_it_again(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-03-01T12:00:00+00:00")
    post(api, geant4("sweep", "R1//PT10M"))
    assert master.timers.fire_due() == 1
    assert api.delete("/scheduler/task/kill/sweep").status_code == 204  # the run is over
    clock.t += 600
    post(api, geant4("sweep", "R1//PT10M"))  # the loop run again: Chronos re-reads it
    assert master.timers.fire_due() == 1
    assert runs_of(api, "sweep") == 2


def test_the_native_apply_of_an_identical_job_keeps_it_unchanged(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    spec = {"name": "native", "task": {"command": ["true"]}, "schedule": "R1//PT10M"}
    assert api.put("/api/v1/jobs/native", json=spec).status_code == 201
    assert master.timers.fire_due() == 1
    api.post("/api/v1/jobs/native/kill")
    r = api.put("/api/v1/jobs/native", json=spec)
    assert r.headers["X-Corral-Changed"] == "false"
    assert master.timers.fire_due() == 0
    assert runs_of(api, "native") == 1


def test_a_period_under_a_second_is_a_400_naming_the_schedule(api: TestClient) -> None:
    r = api.post("/scheduler/iso8601", json=geant4("spin", "R//PT0.0001S"))
    assert r.status_code == 400
    message = r.json()["message"]
    assert message.startswith("schedule:") and "shorter than the minimum of 1 second" in message
    assert api.get("/scheduler/jobs").json() == []


def test_schedule_time_zone_wins_over_a_z_in_the_schedule(
    api: TestClient, clock: FixedClock
) -> None:
    clock.t = at("2027-01-01T00:00:00+00:00")
    body = geant4("berlin", "R/2027-01-10T02:00:00.000Z/P1D", scheduleTimeZone="Europe/Berlin")
    post(api, body)
    # 02:00 in Berlin is 01:00 UTC in winter, as Chronos reads the start.
    assert api.get("/api/v1/jobs/berlin").json()["next_run"] == "2027-01-10T01:00:00Z"
    post(api, listed(api, "berlin"))  # what the listing answers posts back the same
    assert api.get("/api/v1/jobs/berlin").json()["next_run"] == "2027-01-10T01:00:00Z"


def test_a_finished_run_once_job_reads_back_as_r0(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-03-01T12:00:00+00:00")
    post(api, geant4("once", "R1/2027-03-01T12:00:00Z/PT10M"))
    post(api, geant4("thrice", "R3/2027-03-01T12:00:00Z/PT10M"))
    assert listed(api, "thrice")["schedule"] == "R3/2027-03-01T12:00:00Z/PT10M"
    assert master.timers.fire_due() == 2
    assert listed(api, "once")["schedule"] == "R0/2027-03-01T12:00:00Z/PT10M"
    assert listed(api, "thrice")["schedule"] == "R2/2027-03-01T12:00:00Z/PT10M"


def test_a_container_path_keeps_its_trailing_slash(
    api: TestClient, master: Master, volume_root: Path
) -> None:
    container = {
        "type": "DOCKER",
        "image": "busybox",
        "volumes": [{"containerPath": "/in/", "hostPath": str(volume_root), "mode": "RO"}],
    }
    post(api, geant4("slash", "R/2100-01-01T00:00:00Z/PT1H", container=container))
    [volume] = listed(api, "slash")["container"]["volumes"]
    assert volume["containerPath"] == "/in/"


@pytest.mark.parametrize(
    ("name", "instead"), [("geant4 run #1", "geant4-run-1"), ("#sim 2", "sim-2")]
)
def test_a_name_with_spaces_or_hash_is_refused_saying_what_to_use_instead(
    api: TestClient, name: str, instead: str
) -> None:
    r = api.post("/scheduler/iso8601", json=geant4(name, "R1//PT10M"))
    assert r.status_code == 400
    message = r.json()["message"]
    assert message.startswith("name:") and f"use {instead!r} instead" in message


def test_a_manual_run_of_a_disabled_job_runs_it_once_and_it_stays_disabled(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-03-01T12:00:00+00:00")
    post(api, geant4("off", "R/2027-03-01T13:00:00Z/PT1H", disabled=True))
    assert api.put("/scheduler/job/off").status_code == 204
    assert runs_of(api, "off") == 1
    assert listed(api, "off")["disabled"] is True
    api.delete("/scheduler/task/kill/off")
    clock.t = at("2027-03-01T13:00:00+00:00")
    assert master.timers.fire_due() == 0
    assert runs_of(api, "off") == 1


def test_posting_an_identical_job_with_a_fixed_start_again_never_reruns_a_firing(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    # Tools that sync job files post every job again and again: a daily job posted again
    # just after it fired must not fire twice.
    clock.t = at("2027-03-01T02:00:00+00:00")
    post(api, geant4("daily", "R/2027-01-01T02:00:00Z/P1D"))
    assert master.timers.fire_due() == 1
    api.delete("/scheduler/task/kill/daily")
    clock.t += 20
    post(api, geant4("daily", "R/2027-01-01T02:00:00Z/P1D"))
    assert master.timers.fire_due() == 0
    assert runs_of(api, "daily") == 1
    assert api.get("/api/v1/jobs/daily").json()["next_run"] == "2027-03-02T02:00:00Z"
