"""``corral job show`` and ``corral job run`` of scheduled jobs, against a fake master: the next
firings in the job's zone and UTC, the newest skip record, and what a run of a disabled job does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx

from corral.spec.jobs import JobSpec, TaskTemplate
from corral.spec.views import FiringView, JobView, SkipView
from tests.cli.fake_master import Handler
from tests.cli.samples import T0, job_view, run_view
from tests.cli.test_service_cli import cli, master

__all__ = ["master"]

CET, CEST = timezone(timedelta(hours=1)), timezone(timedelta(hours=2))


def berlin_job(disabled: bool = False) -> JobView:
    """A daily 02:30 Berlin job across the spring-forward night, with a skip record."""
    spec = JobSpec(
        name="raw",
        task=TaskTemplate(command=["true"]),
        schedule="R3/2026-03-28T02:30/P1D",
        timezone="Europe/Berlin",
        disabled=disabled,
    )
    firings = [
        datetime(2026, 3, 28, 2, 30, tzinfo=CET),
        datetime(2026, 3, 29, 3, 30, tzinfo=CEST),  # 02:30 does not exist that night
        datetime(2026, 3, 30, 2, 30, tzinfo=CEST),
    ]
    return job_view("raw").model_copy(
        update={
            "spec": spec,
            "remaining": 3,
            "upcoming": [FiringView(at=f, local=f, index=i) for i, f in enumerate(firings)],
            "last_skip": SkipView(
                time=T0,
                reason="previous run still running",
                count=4,
                first=datetime(2026, 3, 20, 1, 30, tzinfo=CET),
                last=datetime(2026, 3, 23, 1, 30, tzinfo=CET),
            ),
        }
    )


def answer(job: JobView) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/runs") and request.method == "GET":
            return httpx.Response(200, json=[])
        if path.endswith("/runs"):
            return httpx.Response(201, json=run_view("raw").model_dump(mode="json"))
        if path.startswith("/api/v1/tasks"):
            return httpx.Response(200, json=[])
        return httpx.Response(200, json=job.model_dump(mode="json"))

    return handle


def test_job_show_lists_the_next_firings_in_the_zone_and_utc_and_the_last_skip(
    master: Callable[[Handler], list[httpx.Request]],
) -> None:
    master(answer(berlin_job()))
    result = cli("job", "show", "raw")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "R3/2026-03-28T02:30/P1D (Europe/Berlin), 3 firings left" in out
    assert "2026-03-28 02:30:00 +0100 Europe/Berlin = 2026-03-28 01:30:00 UTC" in out
    assert "2026-03-29 03:30:00 +0200 Europe/Berlin = 2026-03-29 01:30:00 UTC" in out
    assert "2026-03-30 02:30:00 +0200 Europe/Berlin = 2026-03-30 00:30:00 UTC" in out
    assert (
        "4 firings from 2026-03-20 00:30:00 to 2026-03-23 00:30:00 UTC: previous run still running"
        in out
    )


def test_a_run_of_a_disabled_job_says_it_is_started_by_hand_and_the_schedule_stays_off(
    master: Callable[[Handler], list[httpx.Request]],
) -> None:
    master(answer(berlin_job(disabled=True)))
    result = cli("job", "run", "raw")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "raw is disabled: this run is started by hand; its schedule still fires nothing",
        "raw: run 1 started, 2 tasks",
    ]


def test_scheduled_jobs_are_listed_soonest_first_with_their_schedule(
    master: Callable[[Handler], list[httpx.Request]],
) -> None:
    def job(name: str, next_run: datetime | None, schedule: str | None = "0 3 * * *") -> object:
        spec = JobSpec(
            name=name,
            task=TaskTemplate(command=["true"]),
            schedule=schedule,
            timezone="Europe/Berlin",
        )
        view = job_view(name).model_copy(update={"spec": spec, "next_run": next_run})
        return view.model_dump(mode="json")

    jobs = [
        job("later", T0 + timedelta(hours=2)),
        job("ended", None),
        job("plain", None, schedule=None),
        job("sooner", T0 + timedelta(hours=1)),
    ]
    master(lambda r: httpx.Response(200, json=jobs))
    result = cli("jobs", "--scheduled")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "SCHEDULE", "NEXT"]
    assert [r.split()[0] for r in rows] == ["sooner", "later", "ended"]
    assert all("0 3 * * * (Europe/Berlin)" in r for r in rows)
