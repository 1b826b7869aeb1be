"""A request body over the limit is a 413 in the format of the API asked, whether its size is
declared (Content-Length) or only found while it streams in (chunked); nothing is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http import HTTPStatus

import pytest
from fastapi.testclient import TestClient

from corral.api.limits import MAX_BODY_BYTES
from corral.master.master import Master

PADDING = "x" * (MAX_BODY_BYTES + 1)
BODIES = {
    "/api/v1/jobs": {"name": "big", "task": {"shell": "true"}, "description": PADDING},
    "/v2/apps": {"id": "/big", "cmd": "true", "labels": {"pad": PADDING}},
    "/scheduler/iso8601": {"name": "big", "command": "true", "description": PADDING},
}


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def assert_api_format(path: str, body: dict[str, object]) -> None:
    if path.startswith("/scheduler"):
        assert body["status"] == HTTPStatus(413).phrase and "limit" in str(body["message"])
    elif path.startswith("/v2"):
        assert "limit" in str(body["message"])
    else:
        assert "limit" in str(body["detail"])


@pytest.mark.parametrize("path", BODIES)
def test_a_body_declared_over_the_limit_is_a_413_in_the_apis_format(
    api: TestClient, master: Master, path: str
) -> None:
    r = api.post(path, json=BODIES[path])
    assert r.status_code == 413, r.text
    assert_api_format(path, r.json())
    assert master.store.jobs() == [] and api.get("/v2/apps").json() == {"apps": []}


@pytest.mark.parametrize("path", BODIES)
def test_a_chunked_body_over_the_limit_is_a_413_in_the_apis_format(
    api: TestClient, master: Master, path: str
) -> None:
    data = json.dumps(BODIES[path]).encode()
    r = api.post(path, content=chunks(data), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413, r.text
    assert_api_format(path, r.json())
    assert master.store.jobs() == [] and api.get("/v2/apps").json() == {"apps": []}


def test_a_body_under_the_limit_is_read_as_before(api: TestClient) -> None:
    body = {"name": "fits", "task": {"shell": "true"}, "description": "x" * 9000}
    assert api.post("/api/v1/jobs", json=body).status_code == 201
