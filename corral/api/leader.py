"""Leader routing: a master that does not lead hands every call to the one that does.

As Marathon does, a follower proxies each HTTP request to the leader and streams its answer
back (event streams too), so clients and curl scripts given any master's URL keep working,
POST bodies included. What a follower answers itself: ``/health`` and ``/ping`` (this process
is up) and ``/v2/leader`` (who leads). A WebSocket (an agent's channel, ``corral exec``) is
accepted and closed at once with ``NOT_LEADER`` and the leader's URL as the reason, so the
agent dials the leader. Every answer names the leader in ``X-Corral-Leader``.

Its memory is the leader's only (a follower loads nothing), so a follower never answers from
its own: with no leader (between a leader's loss and another's lead), calls are answered 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from corral.api.limits import error_answer
from corral.master.master import Master
from corral.spec.protocol import NOT_LEADER
from corral.store.store import Fenced, StoreFull, StoreUnavailable

log = logging.getLogger(__name__)

LOCAL = frozenset({"/health", "/ping", "/v2/leader"})
LEADER_HEADER = "x-corral-leader"
PROXIED_HEADER = "x-corral-proxied-by"  # a proxied call is never proxied again (no loops)
# Not passed on: they concern one connection, not the call (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
# The leader's answer may stream for long (events); reaching it may not.
TIMEOUT = httpx.Timeout(30.0, connect=2.0, read=None)


class LeaderRouting:
    """ASGI middleware: on a follower, proxy HTTP calls to the leader and send WebSockets
    there; on the leader, only name itself in each answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        master: Master = scope["app"].state.master
        leader = master.leader_url
        named = _naming(send, leader)
        if master.leading or scope["path"] in LOCAL:
            await self.app(scope, receive, named)
        elif scope["type"] == "websocket":
            await _send_to_leader(receive, send, leader)
        elif leader is None:
            await _refuse(scope, named, "no master leads at the moment; try again shortly")
        elif leader == master.url:
            await _refuse(scope, named, "this master is taking the lead; try again shortly")
        elif _header(scope, PROXIED_HEADER.encode()) is not None:
            # The leader we sent it to does not lead either: views of the lease disagree for
            # a moment. Better an answer than a loop.
            await _refuse(scope, named, f"this master does not lead, and {leader} did not")
        else:
            await self._proxy(scope, receive, named, leader, master.url)

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, leader: str, me: str
    ) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        headers.append((PROXIED_HEADER.encode(), me.encode()))
        url = leader.rstrip("/") + scope.get("root_path", "") + scope["path"]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        client = self._client or httpx.AsyncClient(timeout=TIMEOUT, trust_env=False)
        self._client = client
        request = client.build_request(scope["method"], url, headers=headers, content=bytes(body))
        try:
            answer = await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            await _refuse(scope, send, f"the leader {leader} does not answer: {e}")
            return
        except httpx.TransportError as e:
            # Sent, perhaps done: not to be sent again blindly (no Retry-After).
            failed = error_answer(scope["path"], 502, f"the leader {leader} failed: {e}")
            await failed(scope, receive, send)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status_code,
                    "headers": [
                        (k, v) for k, v in answer.headers.raw if k.lower() not in HOP_BY_HOP
                    ],
                }
            )
            await _relay(answer, receive, send)
        finally:
            await answer.aclose()


async def _relay(answer: httpx.Response, receive: Receive, send: Send) -> None:
    """Stream the leader's body to the caller until it ends or the caller goes away."""

    async def copy() -> None:
        async for chunk in answer.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def caller_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    copying = asyncio.create_task(copy())
    watching = asyncio.create_task(caller_gone())
    try:
        await asyncio.wait({copying, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (copying, watching):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError, OSError):
                await task
    if copying.done() and not copying.cancelled() and copying.exception() is not None:
        log.warning("relaying the leader's answer failed: %s", copying.exception())


def _naming(send: Send, leader: str | None) -> Send:
    """``send``, adding the leader's URL to the answer's headers."""

    async def named(message: Message) -> None:
        if message["type"] == "http.response.start" and leader is not None:
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != LEADER_HEADER.encode()
            ]
            message = {**message, "headers": [*headers, (LEADER_HEADER.encode(), leader.encode())]}
        await send(message)

    return named


async def _send_to_leader(receive: Receive, send: Send, leader: str | None) -> None:
    """Accept the WebSocket and close it, naming the leader ("" while nobody leads)."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": NOT_LEADER, "reason": leader or ""})


async def close_refused(ws: WebSocket, exc: Fenced | StoreFull | StoreUnavailable) -> None:
    """Close a WebSocket whose work the store refused, in a way its client acts on: a master
    that stepped down names the leader (``NOT_LEADER``), as a follower does; a store down or
    full asks for another try later (1013). An HTTP error cannot be sent on an open WebSocket."""
    master: Master = ws.app.state.master
    if isinstance(exc, Fenced):
        leader = master.leader_url
        code, reason = NOT_LEADER, leader if leader and leader != master.url else ""
    else:
        # A close reason holds at most 123 bytes (RFC 6455, 5.5).
        code, reason = 1013, f"the state store is unavailable, try again: {exc}"[:120]
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):  # it may be gone
        await ws.close(code=code, reason=reason)


async def _refuse(scope: Scope, send: Send, why: str) -> None:
    """503, and ``Retry-After``: the call was not handed on, so nothing of it was done and it
    may be sent again as it is (Corral's clients do, for a while: masters.py)."""
    answer = error_answer(scope["path"], 503, why)
    headers = [*answer.raw_headers, (b"retry-after", b"1")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None
