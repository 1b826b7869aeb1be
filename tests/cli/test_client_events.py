"""Server-sent events: decoding, the clients' streams, and following a run with or without them."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing

import httpx
import pytest

from corral.cli import follow as follow_module
from corral.cli.follow import follow_run
from corral.client import ApiError, AsyncClient, Client, ClientError
from corral.client._sse import EventDecoder
from corral.spec.states import RunState
from corral.spec.views import RunView
from tests.cli.fake_master import Handler, serving
from tests.cli.samples import run_view


def event(n: int, job: str = "j", run: int | None = 1) -> dict[str, object]:
    """An event as the master puts it in ``data``."""
    return {"id": n, "time": "2025-01-02T03:04:05Z", "type": "task_state", "job": job, "run": run}


def stream(*events: dict[str, object]) -> str:
    """A text/event-stream body with a keep-alive comment and the given events."""
    out = ": keep-alive\n\n"
    for e in events:
        out += f"id: {e['id']}\nevent: {e['type']}\ndata: {json.dumps(e)}\n\n"
    return out


def test_the_decoder_yields_one_event_per_blank_line_and_skips_comments() -> None:
    decoder = EventDecoder()
    lines = stream(event(1), event(2)).split("\n")
    decoded = [e for e in map(decoder.feed, lines) if e is not None]
    assert [e.id for e in decoded] == [1, 2]


def test_the_decoder_joins_multi_line_data() -> None:
    decoder = EventDecoder()
    text = json.dumps(event(7), indent=1)
    for line in text.split("\n"):
        assert decoder.feed(f"data:{line}") is None
    decoded = decoder.feed("")
    assert decoded is not None and decoded.id == 7


def test_an_event_that_is_not_an_event_view_is_a_client_error() -> None:
    decoder = EventDecoder()
    decoder.feed('data: {"id": "x"}')
    with pytest.raises(ClientError, match="unreadable event"):
        decoder.feed("")


def sse(body: str, seen: list[httpx.Request] | None = None) -> Handler:
    """A master whose event stream sends ``body`` and ends."""

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return handle


def test_the_sync_client_streams_events_from_since() -> None:
    seen: list[httpx.Request] = []
    with serving(sse(stream(event(5), event(6)), seen)) as url, Client(url, "tok") as client:
        assert [e.id for e in client.events(since=4)] == [5, 6]
    assert seen[0].url.params["since"] == "4"
    assert seen[0].headers["accept"] == "text/event-stream"


def test_the_sync_client_reads_lines_ended_by_crlf_as_the_master_writes_them() -> None:
    body = stream(event(3)).replace("\n", "\r\n")
    with serving(sse(body)) as url, Client(url, "tok") as client:
        assert [e.id for e in client.events()] == [3]


def test_the_async_client_streams_events() -> None:
    transport = httpx.MockTransport(sse(stream(event(1))))

    async def main() -> list[int]:
        async with AsyncClient("http://m", "tok", transport=transport) as client:
            async with aclosing(client.events()) as events:
                return [e.id async for e in events]

    assert asyncio.run(main()) == [1]


def test_an_error_answer_to_the_stream_is_an_api_error() -> None:
    answer = httpx.Response(401, json={"detail": "bad token"})
    with serving(lambda r: answer) as url, Client(url, "x") as client:
        with pytest.raises(ApiError, match="bad token"):
            next(client.events())


def follow(handle: httpx.MockTransport) -> list[RunView]:
    """Follow run 1 of job j against a fake master; the views seen, in order."""
    seen: list[RunView] = []

    async def main() -> None:
        async with AsyncClient("http://m", "tok", transport=handle) as client:
            await follow_run(client, "j", 1, seen.append)

    asyncio.run(asyncio.wait_for(main(), 10))
    return seen


def runs_then(states: list[RunState], events: httpx.Response | None) -> httpx.MockTransport:
    """A master whose run 1 goes through ``states``; ``events`` answers /events (None: 404)."""
    views = iter(states)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/events":
            return events or httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, json=run_view(state=next(views)).model_dump(mode="json"))

    return httpx.MockTransport(handle)


def test_following_a_run_polls_until_it_ends_when_the_master_has_no_event_stream() -> None:
    states = [RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED]
    seen = follow(runs_then(states, events=None))
    assert [v.state for v in seen] == states


def test_following_a_run_refetches_it_when_an_event_of_the_run_arrives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With polls this slow, only the event can bring the second fetch within the test's timeout.
    monkeypatch.setattr(follow_module, "POLL", 60.0)
    monkeypatch.setattr(follow_module, "SAFETY_POLL", 60.0)
    body = stream(event(1, job="other"), event(2))
    events = httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    seen = follow(runs_then([RunState.RUNNING, RunState.FAILED], events))
    assert [v.state for v in seen] == [RunState.RUNNING, RunState.FAILED]
