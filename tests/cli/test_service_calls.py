"""The clients' service and deployment calls against a fake master: paths, flags, answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from corral.client import AsyncClient, Client, ClientError
from tests.cli.fake_master import serving
from tests.cli.samples import deployment_view, service_spec, service_view


@contextmanager
def answering(status: int, body: object, seen: list[httpx.Request]) -> Iterator[Client]:
    """A client whose master answers ``status`` and JSON ``body``, remembering each request."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    with serving(handle) as url, Client(url, "tok") as client:
        yield client


DEPLOYMENT = deployment_view().model_dump(mode="json")


@pytest.mark.parametrize("given", ["/lab/db", "lab/db", "/lab/db/", "/lab/./x/../db"])
def test_a_service_id_is_a_path_under_services_whatever_way_it_is_written(given: str) -> None:
    seen: list[httpx.Request] = []
    with answering(200, service_view().model_dump(mode="json"), seen) as client:
        client.service(given)
    assert seen[0].url.raw_path == b"/api/v1/services/lab/db"


@pytest.mark.parametrize("bad", ["/../agents", "Web", "/a b", ""])
def test_an_id_no_service_can_have_is_refused_without_a_request(bad: str) -> None:
    seen: list[httpx.Request] = []
    with answering(200, {}, seen) as client, pytest.raises(ClientError, match="service id"):
        client.delete_service(bad)
    assert seen == []


def test_apply_puts_the_spec_at_its_id_and_tells_created_from_changed() -> None:
    seen: list[httpx.Request] = []
    with answering(201, DEPLOYMENT, seen) as client:
        deployment, created = client.apply_service(service_spec("/lab/web"))
    assert created and deployment.services == ["/web"]
    assert (seen[0].method, seen[0].url.path) == ("PUT", "/api/v1/services/lab/web")
    body = json.loads(seen[0].content)
    assert body["id"] == "/lab/web" and "owner" not in body
    with answering(200, DEPLOYMENT, []) as client:
        assert client.apply_service(service_spec())[1] is False


def test_force_and_scale_are_query_flags_sent_only_when_set() -> None:
    seen: list[httpx.Request] = []
    task = {
        "id": "web.1",
        "job": "/web",
        "run": 1,
        "slot": 0,
        "index": 0,
        "attempt": 0,
        "state": "RUNNING",
        "resources": {"cpus": 0.1, "mem": 32, "disk": 0},
        "created_at": "2025-01-02T03:04:05Z",
    }
    with answering(200, DEPLOYMENT, seen) as client:
        client.scale_service("web", 3, force=True)
        client.restart_service("web")
    with answering(200, task, seen) as client:
        client.kill_service_task("/web", "web.1", scale=True)
    assert [(r.method, r.url.path, dict(r.url.params)) for r in seen] == [
        ("POST", "/api/v1/services/web/scale", {"force": "true"}),
        ("POST", "/api/v1/services/web/restart", {}),
        ("DELETE", "/api/v1/services/web/tasks/web.1", {"scale": "true"}),
    ]
    assert json.loads(seen[0].content) == {"instances": 3}


def test_a_forced_cancel_answers_none_and_a_rollback_its_deployment() -> None:
    with answering(202, None, []) as client:
        assert client.cancel_deployment("d-1", force=True) is None
    seen: list[httpx.Request] = []
    with answering(200, DEPLOYMENT, seen) as client:
        back = client.cancel_deployment("d-1")
    assert back is not None and back.id == "d-1"
    assert (seen[0].method, seen[0].url.path) == ("DELETE", "/api/v1/deployments/d-1")


def test_listing_every_deployment_asks_for_all() -> None:
    seen: list[httpx.Request] = []
    with answering(200, [DEPLOYMENT], seen) as client:
        assert client.deployments() == [deployment_view()]
        client.deployments(include_ended=True)
    assert [dict(r.url.params) for r in seen] == [{}, {"all": "true"}]


def test_the_async_client_makes_the_same_service_calls() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/versions"):
            return httpx.Response(200, json=[])
        return httpx.Response(200, json=[service_view().model_dump(mode="json")])

    async def main() -> None:
        transport = httpx.MockTransport(handle)
        async with AsyncClient("http://master", "tok", transport=transport) as client:
            assert [s.id for s in await client.services()] == ["/web"]
            assert await client.service_versions("lab/db") == []

    asyncio.run(main())
    assert [r.url.path for r in seen] == ["/api/v1/services", "/api/v1/services/lab/db/versions"]
