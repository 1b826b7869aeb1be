"""Scheduled and dependent jobs through the native API, with an injected clock.

No agent runs here, so runs stay pending: these tests are about when runs start, what is
skipped and why, and what is refused.
"""

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from corral.master.master import Master
from tests.api.conftest import FixedClock


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def job(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "task": {"command": ["true"]}, **extra}


def runs_of(api: TestClient, name: str) -> int:
    return int(api.get(f"/api/v1/jobs/{name}").json()["runs"])


def skipped_reasons(master: Master, name: str) -> list[str]:
    return [
        e["reason"]
        for e in master.store.events_since(0, limit=100_000)
        if e["type"] == "run_skipped" and e["job"] == name
    ]


def skips(master: Master, name: str) -> list[dict[str, Any]]:
    return [
        dict(e)
        for e in master.store.events_since(0, limit=100_000)
        if e["type"] == "run_skipped" and e["job"] == name
    ]


def dashboard(api: TestClient, token: str, path: str) -> str:
    """A dashboard page, signed in as the dashboard is: with the token cookie."""
    api.cookies.set("corral_token", token)
    r = api.get(path)
    assert r.status_code == 200, r.text
    return r.text


@pytest.fixture
def clock(master: Master) -> FixedClock:
    c = master.state.clock
    assert isinstance(c, FixedClock)
    return c


def test_an_iso_schedule_fires_at_its_times_and_stops_after_its_repetitions(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2026-12-31T23:00:00+00:00")
    spec = job("hourly", schedule="R2/2027-01-01T00:00:00Z/PT1H", concurrent=True)
    assert api.post("/api/v1/jobs", json=spec).status_code == 201
    assert runs_of(api, "hourly") == 0
    assert api.get("/api/v1/jobs/hourly").json()["next_run"] == "2027-01-01T00:00:00Z"
    for now, fired, total in [
        ("2026-12-31T23:59:59+00:00", 0, 0),
        ("2027-01-01T00:00:30+00:00", 1, 1),
        ("2027-01-01T00:59:00+00:00", 0, 1),
        ("2027-01-01T01:00:00+00:00", 1, 2),
        ("2027-01-01T05:00:00+00:00", 0, 2),
    ]:
        clock.t = at(now)
        assert master.timers.fire_due() == fired, now
        assert runs_of(api, "hourly") == total, now
    assert api.get("/api/v1/jobs/hourly").json()["next_run"] is None


def test_r1_with_an_empty_start_runs_once_right_away(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-03-01T12:00:00+00:00")
    api.post("/api/v1/jobs", json=job("once", schedule="R1//PT10M"))
    assert master.timers.fire_due() == 1
    clock.t += 3600
    assert master.timers.fire_due() == 0
    assert runs_of(api, "once") == 1


def test_firings_missed_while_the_master_was_down_run_once_not_in_a_burst(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-01-01T00:00:00+00:00")
    api.post(
        "/api/v1/jobs", json=job("daily", schedule="R/2027-01-01T02:00:00Z/P1D", concurrent=True)
    )
    clock.t = at("2027-01-04T03:00:00+00:00")  # four firings passed while nobody looked
    assert master.timers.fire_due() == 1
    assert runs_of(api, "daily") == 1
    [skip] = skips(master, "daily")
    assert skip["data"]["count"] == 3 and "ran once instead" in skip["reason"]
    assert api.get("/api/v1/jobs/daily").json()["next_run"] == "2027-01-05T02:00:00Z"


def test_with_missed_skip_firings_due_while_no_master_ran_do_not_run(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-01-01T00:00:00+00:00")
    api.post(
        "/api/v1/jobs", json=job("strict", schedule="R/2027-01-01T02:00:00Z/P1D", missed="skip")
    )
    clock.t = at("2027-01-03T02:00:10+00:00")
    master.timers.up_since = at("2027-01-03T02:00:05+00:00")  # the master was down till then
    assert master.timers.fire_due() == 0
    [skip] = skips(master, "strict")
    assert skip["data"]["count"] == 3 and "missed while no master ran" in skip["reason"]


def test_a_firing_later_than_epsilon_is_skipped_and_recorded(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-01-01T00:00:00+00:00")
    api.post("/api/v1/jobs", json=job("tight", schedule="R/2027-01-01T01:00:00Z/PT1H", epsilon=60))
    clock.t = at("2027-01-01T01:00:30+00:00")
    assert master.timers.fire_due() == 1  # 30 s late: within epsilon
    clock.t = at("2027-01-01T02:01:30+00:00")
    assert master.timers.fire_due() == 0  # 90 s late: skipped
    [reason] = skipped_reasons(master, "tight")
    assert "epsilon" in reason


def test_a_start_a_few_seconds_in_the_past_runs(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-03-01T12:00:05+00:00")
    r = api.post("/api/v1/jobs", json=job("sim", schedule="R1/2027-03-01T12:00:00Z/PT10M"))
    assert r.status_code == 201, r.text
    assert api.get("/api/v1/jobs/sim").json()["next_run"] == "2027-03-01T12:00:00Z"
    assert master.timers.fire_due() == 1
    assert runs_of(api, "sim") == 1
    assert api.get("/api/v1/jobs/sim").json()["next_run"] is None


def test_a_start_longer_ago_than_epsilon_is_recorded_as_skipped_with_the_reason(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-03-01T12:05:00+00:00")
    api.post("/api/v1/jobs", json=job("stale", schedule="R1/2027-03-01T12:00:00Z/PT10M"))
    assert master.timers.fire_due() == 0
    [skip] = skips(master, "stale")
    assert skip["reason"] == "due 300s before the job was defined, more than epsilon 60s"
    assert skip["data"]["first"] == "2027-03-01T12:00:00+00:00"
    assert skip["data"]["count"] == 1
    view = api.get("/api/v1/jobs/stale").json()
    assert view["next_run"] is None and view["last_skip"]["reason"] == skip["reason"]


def test_consecutive_skips_of_a_job_are_one_event_with_a_count(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-01-01T00:00:00+00:00")
    api.post("/api/v1/jobs", json=job("busy", schedule="R/2027-01-01T00:00:00Z/PT1S"))
    assert master.timers.fire_due() == 1  # the first run never ends: no agent
    for _ in range(100):
        clock.t += 1
        assert master.timers.fire_due() == 0
    [skip] = skips(master, "busy")
    assert skip["reason"] == "previous run still running"
    assert skip["data"]["count"] == 100
    assert skip["data"]["first"] == "2027-01-01T00:00:01+00:00"
    assert skip["data"]["last"] == "2027-01-01T00:01:40+00:00"
    assert api.get("/api/v1/jobs/busy").json()["last_skip"]["count"] == 100


def test_a_disabled_job_records_one_skip_and_its_schedule_no_longer_wakes_the_master(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-01-01T00:00:00+00:00")
    spec = job("off", schedule="R/2027-01-01T00:00:01Z/PT1S", disabled=True)
    api.post("/api/v1/jobs", json=spec)
    clock.t += 1
    assert master.timers.fire_due() == 0
    assert master.store.earliest_due() is None  # nothing left to wake the loop for
    for _ in range(10):
        clock.t += 1
        assert master.timers.fire_due() == 0
    [skip] = skips(master, "off")
    assert skip["reason"] == "job disabled: its schedule waits until the job is enabled"
    assert api.get("/api/v1/jobs/off").json()["upcoming"] == []
    api.put("/api/v1/jobs/off", json={**spec, "disabled": False})  # enabled: fires on
    clock.t += 0.5
    assert master.timers.fire_due() == 1


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"schedule": "R-1//PT1H"}, "schedule"),
        ({"schedule": "R//PT0S"}, "schedule"),
        ({"schedule": "R//PT0.0001S"}, "shorter than the minimum of 1 second"),
        ({"schedule": "R//P-1D"}, "schedule"),
        ({"schedule": "R/2027-13-45T00:00:00Z/PT1H"}, "schedule"),
        ({"schedule": "R//PT1H", "timezone": "Mars/Olympus"}, "time zone"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "R//PT1H", "parents": ["a"]}, "not both"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_problem(
    api: TestClient, extra: dict[str, Any], words: str
) -> None:
    r = api.post("/api/v1/jobs", json=job("bad", **extra))
    assert r.status_code == 422, r.text
    assert words in r.text
    assert api.get("/api/v1/jobs").json() == []


def test_unknown_parents_and_cycles_are_refused_naming_the_field(api: TestClient) -> None:
    r = api.post("/api/v1/jobs", json=job("child", parents=["ghost"]))
    assert r.status_code == 422
    [detail] = r.json()["detail"]
    assert detail["loc"] == ["body", "parents", 0] and "ghost" in detail["msg"]
    api.post("/api/v1/jobs", json=job("a"))
    api.post("/api/v1/jobs", json=job("b", parents=["a"]))
    api.post("/api/v1/jobs", json=job("c", parents=["b"]))
    r = api.put("/api/v1/jobs/a", json=job("a", parents=["c"]))
    assert r.status_code == 422 and "cycle: a -> c -> b -> a" in r.text
    assert api.get("/api/v1/jobs/a").json()["spec"]["parents"] == []


def test_a_parent_with_children_cannot_be_deleted_and_the_children_are_named(
    api: TestClient,
) -> None:
    api.post("/api/v1/jobs", json=job("raw"))
    api.post("/api/v1/jobs", json=job("clean", parents=["raw"]))
    api.post("/api/v1/jobs", json=job("plot", parents=["raw"]))
    api.post("/api/v1/jobs/raw/kill")
    r = api.delete("/api/v1/jobs/raw")
    assert r.status_code == 409 and "clean, plot" in r.json()["detail"]
    assert api.get("/api/v1/jobs/raw").json()["children"] == ["clean", "plot"]


def test_dependent_jobs_do_not_run_when_submitted(api: TestClient) -> None:
    api.post("/api/v1/jobs", json=job("first"))
    api.post("/api/v1/jobs", json=job("second", parents=["first"]))
    assert runs_of(api, "first") == 1 and runs_of(api, "second") == 0


def test_run_now_appends_arguments_to_the_command(api: TestClient) -> None:
    api.post("/api/v1/jobs", json=job("echoer", task={"command": ["echo", "a"]}))
    r = api.post("/api/v1/jobs/echoer/runs", params={"arguments": ["b", "c d"]})
    assert r.status_code == 201
    assert api.get("/api/v1/tasks/echoer.2.0.0").json()["command"] == ["echo", "a", "b", "c d"]


def test_one_job_lists_its_next_firings_in_its_zone_and_utc_in_the_api_and_the_dashboard(
    api: TestClient, master: Master, clock: FixedClock, token: str
) -> None:
    clock.t = at("2026-03-27T12:00:00+00:00")
    spec = job("raw", schedule="R/2026-03-28T02:30/P1D", timezone="Europe/Berlin")
    api.post("/api/v1/jobs", json=spec)
    view = api.get("/api/v1/jobs/raw", params={"upcoming": 3}).json()
    # 02:30 does not exist in Berlin on 29 March: that firing is at 03:30 summer time.
    assert [(f["local"], f["at"]) for f in view["upcoming"]] == [
        ("2026-03-28T02:30:00+01:00", "2026-03-28T01:30:00Z"),
        ("2026-03-29T03:30:00+02:00", "2026-03-29T01:30:00Z"),
        ("2026-03-30T02:30:00+02:00", "2026-03-30T00:30:00Z"),
    ]
    assert len(api.get("/api/v1/jobs/raw").json()["upcoming"]) == 5
    assert api.get("/api/v1/jobs").json()[0]["upcoming"] == []  # lists stay cheap
    assert api.get("/api/v1/jobs/raw", params={"upcoming": 101}).status_code == 422
    page = dashboard(api, token, "/ui/jobs/raw")
    assert "2026-03-29 03:30:00 +0200 Europe/Berlin" in page
    assert "= 2026-03-29 01:30:00 UTC" in page


def test_the_dashboard_shows_the_newest_skip_record_of_a_job(
    api: TestClient, master: Master, clock: FixedClock, token: str
) -> None:
    clock.t = at("2027-03-01T12:05:00+00:00")
    api.post("/api/v1/jobs", json=job("stale", schedule="R1/2027-03-01T12:00:00Z/PT10M"))
    page = dashboard(api, token, "/ui/jobs/stale")
    assert "1 firing <span" in page and "at 2027-03-01 12:00:00 UTC" in page
    assert "due 300s before the job was defined, more than epsilon 60s" in page


def test_a_schedule_that_cannot_be_handled_parks_its_job_and_the_others_still_fire(
    api: TestClient, master: Master, clock: FixedClock
) -> None:
    clock.t = at("2027-01-01T00:00:00+00:00")
    api.post("/api/v1/jobs", json=job("old", schedule="R/2027-01-01T00:00:00Z/PT1S"))
    api.post("/api/v1/jobs", json=job("fine", schedule="R/2027-01-01T00:00:00Z/PT1H"))
    # As a job stored before periods under 1 s were refused would be.
    old = master.state.specs["old"]
    master.state.specs["old"] = old.model_copy(update={"schedule": "R/2027-01-01T00:00:00Z/PT0.5S"})
    assert master.timers.fire_due() == 1  # "fine" ran
    assert runs_of(api, "fine") == 1 and runs_of(api, "old") == 0
    [skip] = skips(master, "old")
    assert "shorter than the minimum of 1 second" in skip["reason"]
    assert "apply the job again" in skip["reason"]
    assert master.store.earliest_due() == at("2027-01-01T01:00:00+00:00")  # nothing spins
