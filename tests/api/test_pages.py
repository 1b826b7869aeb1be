"""Keyset pages of the native API's long lists: a page with ``limit``, the next one named by
``Link: <...>; rel="next"`` and ``X-Corral-Next``, an opaque cursor passed back as ``after``."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from corral.api.ui import TASKS_PER_RUN
from corral.master.master import Master


def every_page(api: TestClient, path: str, **params: Any) -> list[list[dict[str, Any]]]:
    """The pages of a list, following each page's Link to the next."""
    pages = []
    url: str | None = str(httpx.URL(path, params=params))
    while url is not None:
        answer = api.get(url)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        link = answer.links.get("next")
        assert (link is None) == ("x-corral-next" not in answer.headers)
        url = None if link is None else link["url"]
    return pages


def test_following_the_next_links_lists_every_task_once_in_creation_order(
    api: TestClient,
) -> None:
    spec = {"name": "sweep", "array": "0-6", "task": {"command": ["x"]}}
    assert api.post("/api/v1/jobs", json=spec).status_code == 201
    whole = [t["id"] for t in api.get("/api/v1/tasks", params={"job": "sweep"}).json()]
    pages = every_page(api, "/api/v1/tasks", job="sweep", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [t["id"] for p in pages for t in p] == whole == [f"sweep.1.{i}.0" for i in range(7)]


def test_a_page_that_ends_the_list_names_no_next_page(api: TestClient) -> None:
    spec = {"name": "pair", "array": "0-1", "task": {"command": ["x"]}}
    api.post("/api/v1/jobs", json=spec)
    answer = api.get("/api/v1/tasks", params={"job": "pair", "limit": 2})
    assert len(answer.json()) == 2 and "link" not in answer.headers


def test_tasks_added_while_paging_do_not_shift_the_pages(api: TestClient) -> None:
    api.post("/api/v1/jobs", json={"name": "a", "array": "0-3", "task": {"command": ["x"]}})
    first = api.get("/api/v1/tasks", params={"limit": 2})
    api.post("/api/v1/jobs", json={"name": "b", "array": "0-1", "task": {"command": ["x"]}})
    rest = api.get("/api/v1/tasks", params={"limit": 10, "after": first.headers["x-corral-next"]})
    assert [t["id"] for t in first.json() + rest.json()] == [
        "a.1.0.0",
        "a.1.1.0",
        "a.1.2.0",
        "a.1.3.0",
        "b.1.0.0",
        "b.1.1.0",
    ]


def test_jobs_come_in_pages_newest_first(api: TestClient, master: Master) -> None:
    clock = master.state.clock
    for name in ("one", "two", "three"):
        clock.t += 1  # type: ignore[attr-defined]
        api.post("/api/v1/jobs", json={"name": name, "task": {"command": ["x"]}})
    pages = every_page(api, "/api/v1/jobs", limit=2)
    assert [[j["name"] for j in p] for p in pages] == [["three", "two"], ["one"]]


def test_a_services_tasks_come_in_pages_by_id(api: TestClient, master: Master) -> None:
    doc = {"id": "/web", "instances": 5, "task": {"command": ["x"]}}
    assert api.post("/api/v1/services", json=doc).status_code == 201
    asyncio.run(master.service_loop.run_once())  # no loop runs here: start its tasks
    whole = [t["id"] for t in api.get("/api/v1/services/web/tasks").json()]
    pages = every_page(api, "/api/v1/services/web/tasks", limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [t["id"] for p in pages for t in p] == sorted(whole) and len(whole) == 5


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/jobs"])
def test_a_cursor_the_list_did_not_give_is_refused_naming_after(api: TestClient, path: str) -> None:
    answer = api.get(path, params={"limit": 2, "after": "not-a-cursor"})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("after: not a cursor of this list")


def test_a_jobs_page_shows_a_page_of_a_runs_tasks_and_links_to_the_next(
    api: TestClient,
) -> None:
    spec = {"name": "big", "array": f"0-{TASKS_PER_RUN}", "task": {"command": ["x"]}}
    api.post("/api/v1/jobs", json=spec)
    first = api.get("/ui/jobs/big")
    assert first.status_code == 200
    assert first.text.count('<tr data-task="') == TASKS_PER_RUN
    link = re.search(r'href="([^"]+)" data-next-tasks', first.text)
    assert link is not None
    rest = api.get(html.unescape(link.group(1)))
    assert re.findall(r'<tr data-task="([^"]+)"', rest.text) == [f"big.1.{TASKS_PER_RUN}.0"]
    assert "data-next-tasks" not in rest.text
