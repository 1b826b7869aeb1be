"""``RowClient``: its rows keep in step with the views, it asks what ``Client`` asks, and it
refuses an answer that is not a list of rows."""

from __future__ import annotations

import json
from datetime import timedelta
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

import httpx
import pytest
from pydantic import BaseModel

from corral.cli.output import print_json
from corral.client import Client, ClientError, RowClient
from corral.client.rows import JobRow, JobSpecRow, RunRow
from corral.spec.jobs import JobSpec, TaskTemplate
from corral.spec.views import JobView, RunView
from tests.cli.fake_master import serving
from tests.cli.samples import T0, job_view


def conforms(value: object, hint: Any) -> bool:
    """``value`` (parsed JSON) has the type ``hint`` names, exactly: a time must be the string
    a row says, a count an int; a TypedDict's fields must all be there."""
    if is_typeddict(hint):
        fields = get_type_hints(hint)
        return isinstance(value, dict) and all(
            k in value and conforms(value[k], t) for k, t in fields.items()
        )
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, UnionType):
        return any(conforms(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items()
        )
    return value is None if hint is type(None) else type(value) is hint


def scheduled_job() -> JobView:
    """A job on a schedule, with a next run and counts of its runs."""
    spec = JobSpec.model_validate(
        {
            "name": "nightly",
            "task": {"command": ["true"]},
            "schedule": "R/2026-01-01T02:00/P1D",
            "timezone": "Europe/Berlin",
        }
    )
    view = job_view("nightly")
    return view.model_copy(
        update={"spec": spec, "next_run": T0 + timedelta(hours=5), "success_count": 3}
    )


def child_job() -> JobView:
    """A job that runs after another."""
    spec = JobSpec(name="report", task=TaskTemplate(command=["true"]), parents=["nightly"])
    return job_view("report").model_copy(update={"spec": spec, "last_run": None})


@pytest.mark.parametrize(
    ("row", "view"), [(JobRow, JobView), (RunRow, RunView), (JobSpecRow, JobSpec)]
)
def test_every_field_of_a_row_is_a_field_of_its_view(row: type, view: type[BaseModel]) -> None:
    assert set(get_type_hints(row)) <= set(view.model_fields)


@pytest.mark.parametrize(
    "job", [job_view(), scheduled_job(), child_job()], ids=["plain", "scheduled", "child"]
)
def test_a_views_json_is_a_row_of_the_declared_types(job: JobView) -> None:
    answer = json.loads(job.model_dump_json())
    assert conforms(answer, JobRow)


def test_rows_ask_for_jobs_as_the_client_does() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[child_job().model_dump(mode="json")])

    with serving(handle) as url:
        with RowClient(url, "tok") as rows:
            [row] = rows.jobs(owner="ada", q="night")
        with Client(url, "tok") as client:
            [view] = client.jobs(owner="ada", q="night")
    by_rows, by_client = [(r.method, r.url.raw_path, r.headers["authorization"]) for r in seen]
    assert by_rows == by_client == ("GET", b"/api/v1/jobs?owner=ada&q=night", "Bearer tok")
    assert row["name"] == view.name and row["spec"]["parents"] == view.spec.parents


def test_rows_print_as_json_exactly_as_views_do(capsys: pytest.CaptureFixture[str]) -> None:
    answer = [v.model_dump(mode="json") for v in (scheduled_job(), child_job(), job_view())]
    with serving(lambda r: httpx.Response(200, json=answer)) as url:
        with RowClient(url) as rows:
            print_json(rows.jobs())
        as_rows = capsys.readouterr().out
        with Client(url) as client:
            print_json(client.jobs())
        as_views = capsys.readouterr().out
    assert as_rows == as_views


@pytest.mark.parametrize(
    "answer",
    [{"name": "j"}, [{"name": "j"}], ["j"], "<html>"],
    ids=["an object", "rows without fields", "strings", "not JSON"],
)
def test_an_answer_that_is_not_a_list_of_rows_names_the_call(answer: object) -> None:
    body = answer if isinstance(answer, str) else json.dumps(answer)
    with serving(lambda r: httpx.Response(200, text=body)) as url, RowClient(url) as rows:
        with pytest.raises(ClientError, match="unexpected answer from the master to GET /api/"):
            rows.jobs()
