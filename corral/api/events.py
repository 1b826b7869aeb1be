"""``/api/v1/events``: every committed event the caller may read, as server-sent events,
resumable by id; ``type`` (repeatable) and ``job`` keep only those events.

A filter is applied before an event is rendered: a client that waits for one run's end does not
cost the master a rendering of every task's every state (five events a task)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from corral.api.callers import master_of
from corral.api.render import event_view
from corral.api.v1 import MAX_ID
from corral.master.events import EventFilter, Subscription
from corral.master.master import Master

router = APIRouter(prefix="/api/v1")
KEEPALIVE = 15.0
EVENT_TYPE = r"^[a-z][a-z_]{0,63}$"  # the shape of every event type (``task_state``...)

EventType = Annotated[str, StringConstraints(pattern=EVENT_TYPE)]


def event_filter(types: Collection[str], job: str | None) -> EventFilter | None:
    """Whether an event is of one of ``types`` (any, if empty) and of ``job`` (any, if None);
    None when that is every event."""
    if not types and job is None:
        return None
    wanted = frozenset(types)

    def keep(event: Mapping[str, Any]) -> bool:
        return (not wanted or event["type"] in wanted) and (job is None or event.get("job") == job)

    return keep


def sse(event: Mapping[Any, Any]) -> str:
    """One event in the text/event-stream format."""
    body = event_view(event).model_dump_json()
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {body}\n\n"


async def follow(
    sub: Subscription, request: Request
) -> AsyncIterator[list[Mapping[str, Any]] | None]:
    """The live events of a subscription, every one waiting at once (a busy master publishes
    thousands a second: one write each would cost it more than making them), and None after
    every ``KEEPALIVE`` seconds of quiet (time for a keep-alive); ends when the client has gone
    or the subscription overflowed."""
    while not sub.overflowed.is_set():
        if not sub.pending:
            try:
                async with asyncio.timeout(KEEPALIVE):  # a timer, not a task, per wait
                    await sub.ready.wait()
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield None
                continue
        if not sub.overflowed.is_set():
            yield sub.take()


async def stream(
    master: Master, since: int, request: Request, keep: EventFilter | None = None
) -> AsyncIterator[str]:
    """Missed events from the store, then live ones; ids never repeat or go backwards. Only
    events the caller's reads show (``master`` is the master as the caller reads it) and
    ``keep`` accepts."""
    # Subscribed first, so nothing falls between replay and live.
    sub = master.bus.subscribe(keep)
    try:
        last = since
        while True:
            batch = master.queries.events_since(last, limit=1000)
            if batch:
                replayed = "".join(sse(row) for row in batch if keep is None or keep(row))
                if replayed:
                    yield replayed
                last = batch[-1]["id"]
            if len(batch) < 1000:
                break
        async for live in follow(sub, request):
            if live is None:
                yield ": keepalive\n\n"
                continue
            chunk = []
            for ev in live:
                if ev["id"] > last and master.queries.sees_event(ev):
                    chunk.append(sse(ev))
                    last = ev["id"]
            if chunk:
                yield "".join(chunk)
    finally:
        master.bus.unsubscribe(sub)


@router.get("/events", response_class=StreamingResponse)
async def events(
    request: Request,
    since: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Replay events after this id.")
    ] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=MAX_ID)] = None,
    types: Annotated[
        list[EventType] | None,
        Query(
            alias="type",
            description="Only events of this type (repeatable: any of them), e.g. run_state.",
        ),
    ] = None,
    job: Annotated[
        str | None, Query(min_length=1, max_length=512, description="Only events of this job.")
    ] = None,
) -> StreamingResponse:
    """Server-sent events of every state change the caller may read. Without ``since``, only
    new events."""
    master = master_of(request)
    start = since if since is not None else last_event_id
    if start is None:
        start = master.queries.last_event_id()
    return StreamingResponse(
        stream(master, start, request, event_filter(types or (), job)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
