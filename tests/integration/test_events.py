"""The event stream of a real master: a job's whole life in order, and resuming after an id,
with ``?since=`` and with the ``Last-Event-ID`` header."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from contextlib import closing

import httpx
import pytest

from corral.spec.jobs import JobSpec
from corral.spec.views import EventView
from tests.support.cluster import Cluster, EventWatcher

pytestmark = pytest.mark.integration

LIFE = ["PENDING", "STAGING", "STARTING", "RUNNING", "FINISHED"]
MAX_EVENTS = 500  # far more than one short job makes: a stream that runs on is a failure


def read_until(
    events: Generator[EventView, None, None], last: Callable[[EventView], bool]
) -> list[EventView]:
    """Events up to and including the first that ``last`` accepts; the stream is closed after."""
    seen: list[EventView] = []
    with closing(events):
        for event in events:
            seen.append(event)
            if last(event):
                return seen
            assert len(seen) < MAX_EVENTS, f"no end in sight after {len(seen)} events"
    raise AssertionError(f"the stream ended after {len(seen)} events")


def run_a_short_job(cluster: Cluster) -> list[EventView]:
    """Run a 3-task array to its end on one agent; answers the whole event log up to its end."""
    cluster.add_agent("a1")
    with cluster.client() as c:
        c.create_job(
            JobSpec.model_validate(
                {"name": "short", "array": "0-2", "task": {"shell": "true", "mem": 32}}
            )
        )
    assert cluster.wait_run("short") == "SUCCEEDED"
    with cluster.client() as c:
        return read_until(c.events(since=0), ends_the_run)


def ends_the_run(e: EventView) -> bool:
    return e.type == "run_state" and e.job == "short" and e.state == "SUCCEEDED"


def test_a_job_s_whole_life_is_on_the_stream_in_order(cluster: Cluster) -> None:
    log = run_a_short_job(cluster)
    ids = [e.id for e in log]
    assert ids == sorted(set(ids)), "ids must strictly increase"

    mine = [e for e in log if e.job == "short"]
    assert mine[0].type == "job_created" and mine[0].data == {"owner": "admin", "group": "users"}
    assert [e.type for e in mine].count("job_created") == 1
    assert [e.state for e in mine if e.type == "run_state"] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert all(e.run == 1 for e in mine if e.type in ("run_state", "task_state"))

    tasks = [e for e in mine if e.type == "task_state"]
    assert {e.task_id for e in tasks} == {"short.1.0.0", "short.1.1.0", "short.1.2.0"}
    for task in ("short.1.0.0", "short.1.1.0", "short.1.2.0"):
        assert [e.state for e in tasks if e.task_id == task] == LIFE, task
    created = next(e.id for e in mine if e.type == "run_state" and e.state == "PENDING")
    assert all(created < e.id for e in tasks if e.state != "PENDING")
    agent = {e.agent_id for e in tasks if e.state in ("STARTING", "RUNNING", "FINISHED")}
    assert len(agent) == 1 and None not in agent


def test_resuming_after_an_id_gives_exactly_the_events_after_it(cluster: Cluster) -> None:
    log = run_a_short_job(cluster)
    for middle in (log[len(log) // 2], log[1], log[-2]):
        with cluster.client() as c:
            rest = read_until(c.events(since=middle.id), ends_the_run)
        assert [e.id for e in rest] == [e.id for e in log if e.id > middle.id]
        assert rest == [e for e in log if e.id > middle.id]


def test_a_reconnect_with_last_event_id_gives_exactly_the_events_after_it(
    cluster: Cluster,
) -> None:
    log = run_a_short_job(cluster)
    middle = log[len(log) // 2]
    headers = {
        "Authorization": f"Bearer {cluster.token}",
        "Accept": "text/event-stream",
        "Last-Event-ID": str(middle.id),
    }
    blocks: list[dict[str, str]] = []
    block: dict[str, str] = {}
    # A read timeout, so a stream that stalls fails the test instead of hanging it.
    with httpx.stream(
        "GET", f"{cluster.url}/api/v1/events", headers=headers, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":"):
                continue  # a keep-alive comment
            if line:
                name, _, value = line.partition(": ")
                block[name] = value
                continue
            blocks.append(block)
            block = {}
            if ends_the_run(EventView.model_validate_json(blocks[-1]["data"])):
                break
            assert len(blocks) < MAX_EVENTS

    expected = [e for e in log if e.id > middle.id]
    assert [int(b["id"]) for b in blocks] == [e.id for e in expected]
    assert [b["event"] for b in blocks] == [e.type for e in expected]
    assert [json.loads(b["data"])["id"] for b in blocks] == [e.id for e in expected]
    assert [EventView.model_validate_json(b["data"]) for b in blocks] == expected


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"since": str(2**63)}, {}), ({}, {"Last-Event-ID": str(2**63)})],
    ids=["since", "Last-Event-ID"],
)
def test_a_resume_id_past_every_event_is_answered_not_dropped(
    cluster: Cluster, params: dict[str, str], headers: dict[str, str]
) -> None:
    # Either refused, or a stream that stays open for what comes next; not a stream that ends at
    # once (a client would reconnect with the same id, again and again).
    headers = {"Authorization": f"Bearer {cluster.token}", **headers}
    timeout = httpx.Timeout(10, read=1)  # well under the 15 s keep-alive
    url = f"{cluster.url}/api/v1/events"
    with httpx.stream("GET", url, params=params, headers=headers, timeout=timeout) as response:
        if response.status_code != 200:
            assert 400 <= response.status_code < 500
            return
        with pytest.raises(httpx.ReadTimeout):
            lines = list(response.iter_lines())
            raise AssertionError(f"the stream ended after {len(lines)} lines")


def test_a_stream_of_some_types_or_one_job_carries_those_events_only(cluster: Cluster) -> None:
    runs = EventWatcher(cluster.url, cluster.token, types=["run_state"])  # live, from now on
    try:
        log = run_a_short_job(cluster)
        runs.wait_event(ends_the_run, 30, "the run's end on the filtered stream")
        assert [e.type for e in runs.snapshot()] == ["run_state"] * 3
        assert runs.snapshot() == [e for e in log if e.type == "run_state"]
    finally:
        runs.close()
    with cluster.client() as c:  # replayed from the store
        tasks = read_until(c.events(since=0, types=["task_state", "run_state"]), ends_the_run)
        assert tasks == [e for e in log if e.type in ("task_state", "run_state")]
        c.create_job(JobSpec.model_validate({"name": "other", "task": {"shell": "true"}}))
        mine = read_until(c.events(since=0, job="other"), lambda e: e.state == "SUCCEEDED")
    assert {e.job for e in mine} == {"other"}
    assert [e.type for e in mine][:2] == ["job_created", "run_state"]


@pytest.mark.parametrize("params", [{"type": "Run State"}, {"type": ""}, {"job": ""}])
def test_a_bad_filter_is_refused_naming_it(cluster: Cluster, params: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    url = f"{cluster.url}/api/v1/events"
    with httpx.stream("GET", url, params=params, headers=headers, timeout=10) as response:
        response.read()
    assert response.status_code == 422, response.text  # as every refused query of the API
    (loc,) = [error["loc"] for error in response.json()["detail"]]
    assert loc[:2] == ["query", next(iter(params))]
