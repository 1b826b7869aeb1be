"""``/api/v1/events``: every committed event the caller may read, as server-sent events,
resumable by id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from corral.api.callers import master_of
from corral.api.render import event_view
from corral.api.v1 import MAX_ID
from corral.master.events import Subscription
from corral.master.master import Master

router = APIRouter(prefix="/api/v1")
KEEPALIVE = 15.0


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


async def stream(master: Master, since: int, request: Request) -> AsyncIterator[str]:
    """Missed events from the store, then live ones; ids never repeat or go backwards. Only
    events the caller's reads show (``master`` is the master as the caller reads it)."""
    sub = master.bus.subscribe()  # subscribe first, so nothing falls between replay and live
    try:
        last = since
        while True:
            batch = master.queries.events_since(last, limit=1000)
            if batch:
                yield "".join(sse(row) for row in batch)
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
) -> StreamingResponse:
    """Server-sent events of every state change the caller may read. Without ``since``, only
    new events."""
    master = master_of(request)
    start = since if since is not None else last_event_id
    if start is None:
        start = master.queries.last_event_id()
    return StreamingResponse(
        stream(master, start, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
