"""The clients against a fake master (a real server for the blocking one, httpx.MockTransport
for the async one): requests, answers, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from corral.client import ApiError, AsyncClient, Client, ClientError, UnreachableError
from corral.spec.jobs import JobSpec, TaskTemplate
from tests.cli.fake_master import serving
from tests.cli.samples import job_view
from tests.support.cluster import free_port

SPEC = JobSpec(name="j", task=TaskTemplate(command=["true"]))


@contextmanager
def fake(
    status: int,
    body: object = None,
    seen: list[httpx.Request] | None = None,
    token: str | None = "tok",
) -> Iterator[Client]:
    """A client whose master answers every request with ``status`` and JSON ``body``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body)

    with serving(handle) as url, Client(url, token) as client:
        yield client


def test_requests_carry_the_bearer_token_and_answers_become_views() -> None:
    seen: list[httpx.Request] = []
    with fake(200, job_view().model_dump(mode="json"), seen) as client:
        job = client.job("j")
    assert job == job_view()
    assert seen[0].url.path == "/api/v1/jobs/j"
    assert seen[0].headers["authorization"] == "Bearer tok"


def test_no_authorization_header_is_sent_without_a_token() -> None:
    seen: list[httpx.Request] = []
    with fake(200, [], seen, token=None) as client:
        client.agents()
    assert "authorization" not in seen[0].headers


def test_filters_become_query_parameters_and_unset_ones_are_left_out() -> None:
    seen: list[httpx.Request] = []
    with fake(200, [], seen) as client:
        client.tasks(state="FAILED", job="j", limit=5)
    assert dict(seen[0].url.params) == {"state": "FAILED", "job": "j", "limit": "5"}


def test_a_name_cannot_escape_its_path_segment() -> None:
    seen: list[httpx.Request] = []
    with fake(204, None, seen) as client:
        client.delete_job("../agents")
    assert seen[0].url.raw_path == b"/api/v1/jobs/..%2Fagents"


def test_apply_tells_a_created_job_from_an_existing_one() -> None:
    body = job_view().model_dump(mode="json")
    with fake(201, body) as client:
        assert client.apply_job(SPEC)[1] is True
    with fake(200, body) as client:
        assert client.apply_job(SPEC)[1] is False


def test_the_spec_is_sent_without_unset_optional_fields() -> None:
    seen: list[httpx.Request] = []
    with fake(201, job_view().model_dump(mode="json"), seen) as client:
        client.create_job(SPEC)
    body = httpx.Response(200, content=seen[0].content).json()
    assert "owner" not in body and "shell" not in body["task"]
    assert body["task"]["command"] == ["true"]


def test_a_422_names_each_field_without_body_and_joins_the_messages() -> None:
    detail = [
        {"loc": ["body", "task", "cpus"], "msg": "Input should be greater than 0", "type": "x"},
        {"loc": ["body", "name"], "msg": "String should match pattern", "type": "y"},
    ]
    with fake(422, {"detail": detail}) as client, pytest.raises(ApiError) as caught:
        client.create_job(SPEC)
    assert caught.value.status == 422
    assert str(caught.value) == (
        "task.cpus: Input should be greater than 0; name: String should match pattern"
    )


def test_other_errors_carry_the_detail_string() -> None:
    with fake(404, {"detail": "job 'x' not found"}) as client, pytest.raises(ApiError) as caught:
        client.job("x")
    assert (caught.value.status, caught.value.message) == (404, "job 'x' not found")


def test_an_error_page_that_is_not_json_is_summarised() -> None:
    with serving(lambda r: httpx.Response(502, text="<h1>bad</h1>")) as url, Client(url) as client:
        with pytest.raises(ApiError) as caught:
            client.info()
    assert str(caught.value) == "HTTP 502 Bad Gateway: <h1>bad</h1>"


def test_an_answer_that_does_not_fit_the_view_is_a_client_error_naming_the_call() -> None:
    with fake(200, {"unexpected": True}) as client, pytest.raises(ClientError) as caught:
        client.job("j")
    assert "GET /api/v1/jobs/j" in str(caught.value)


def test_a_master_that_is_not_listening_is_reported_as_unreachable_with_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, None) as client, pytest.raises(UnreachableError) as caught:
        client.info()
    assert f"master at {url} is not reachable" in str(caught.value)


def test_the_async_client_makes_the_same_calls() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "PUT":
            return httpx.Response(201, json=job_view().model_dump(mode="json"))
        return httpx.Response(409, json={"detail": "job 'j' has unfinished tasks"})

    async def main() -> None:
        transport = httpx.MockTransport(handle)
        async with AsyncClient("http://master", "tok", transport=transport) as client:
            assert (await client.apply_job(SPEC))[1] is True
            with pytest.raises(ApiError, match="unfinished tasks"):
                await client.delete_job("j")

    asyncio.run(main())
    assert [(r.method, r.url.path) for r in seen] == [
        ("PUT", "/api/v1/jobs/j"),
        ("DELETE", "/api/v1/jobs/j"),
    ]
    assert seen[0].headers["authorization"] == "Bearer tok"
