"""The blocking client's HTTP, over the standard library's ``http.client``.

httpx takes about a tenth of a second to import, more than a CLI call spends on its request; the
blocking client sends one request at a time, so one kept-alive connection is all it needs. As
httpx did, it honours ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY``; certificates
are checked against the system's store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` point elsewhere). The
asyncio client keeps httpx.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import SplitResult, quote, unquote, urlencode, urlsplit

from corral.client._api import auth_headers
from corral.client.config import load_config
from corral.client.errors import ClientError, UnreachableError, error_from_response
from corral.client.masters import Failover, Rotation, Wait, failover

Params = Mapping[str, str | int | list[str]]

# Sent again on a fresh connection when a kept-alive one turns out closed: asking twice is
# harmless for these (a POST is never repeated).
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy"})


@dataclass(frozen=True, slots=True)
class Response:
    """A whole answer of the master: status, reason and body."""

    status_code: int
    reason_phrase: str
    content: bytes
    headers: Mapping[str, str]  # names in lower case

    @property
    def is_error(self) -> bool:
        """True for a 4xx or 5xx status."""
        return self.status_code >= 400

    @property
    def text(self) -> str:
        """The body as text (UTF-8, as the master writes it)."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` if it is not."""
        return json.loads(self.content)


class Connection:
    """Requests to the master at ``url`` (``http://`` or ``https://``, optionally with a path
    prefix), with ``headers`` on each; ``timeout`` bounds the connect and each read.

    Raises ``ClientError`` for a URL no request can go to. One request at a time: threads
    sharing a connection take turns. ``close()`` also ends the streams being read.
    """

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float) -> None:
        self.url = url
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise ClientError(f"invalid master URL {url!r}: {e}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"invalid master URL {url!r}: give http://HOST[:PORT] or https://…")
        self._host = parts.hostname
        self._port = port or (443 if parts.scheme == "https" else 80)
        self._prefix = parts.path.rstrip("/")
        self._headers = {"User-Agent": "corral-client", **headers}
        self._timeout = timeout
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._proxy = _proxy_for(parts.scheme, f"{self._host}:{self._port}")
        if self._proxy is not None and self._tls is None:
            # A plain-HTTP proxy reads every request; an HTTPS tunnel is asked once, in _open.
            self._headers.update(_proxy_authorization(self._proxy))
        self._conn: http.client.HTTPConnection | None = None
        self._streams: set[socket.socket] = set()  # the sockets of the streams being read
        self._lock = threading.Lock()

    def request(
        self, method: str, path: str, params: Params | None = None, body: Any = None
    ) -> Response:
        """Send one request (``body`` as JSON unless None) and read the whole answer."""
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        target = self._target(path, params)
        with self._lock:
            try:
                with self._failures():
                    return self._send(method, target, data, headers)
            except BaseException:
                self._drop()  # half a request or answer may be left on it
                raise

    @contextmanager
    def stream(
        self, path: str, params: Params | None, headers: Mapping[str, str]
    ) -> Iterator[Iterator[str]]:
        """``GET`` a stream on a connection of its own, without a read timeout; yields its lines
        (without line ends). An error status raises ``ApiError`` instead."""
        conn = self._open()
        sock = answer = None
        try:
            with self._failures():
                self._dial(conn)
                # Kept: http.client lets go of the socket once the answer says it ends with it.
                sock = conn.sock
                if sock is not None:
                    sock.settimeout(None)  # the stream may stay quiet for long
                    self._streams.add(sock)
                conn.request(
                    "GET", self._target(path, params), headers={**self._headers, **headers}
                )
                answer = conn.getresponse()
                failed = _whole(answer) if answer.status >= 400 else None
            if failed is not None:
                raise error_from_response(failed)
            yield self._lines(answer)
        finally:
            if sock is not None:
                self._streams.discard(sock)
            if answer is not None:
                answer.close()
            conn.close()

    def close(self) -> None:
        """Close the kept-alive connection, if any, and end the streams being read (their
        readers see them end, whichever thread they read in)."""
        for sock in list(self._streams):
            # shutdown, not close: it wakes a reader blocked on the socket in another thread.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._drop()

    def _send(
        self, method: str, target: str, data: bytes | None, headers: dict[str, str]
    ) -> Response:
        conn = self._conn
        if conn is not None and _closed_by_peer(conn):
            self._drop()
            conn = None
        reused = conn is not None
        try:
            return _exchange(conn or self._connect(), method, target, data, headers)
        except ConnectionError:
            if not (reused and method in _IDEMPOTENT):
                raise
        # The master closed the kept-alive connection as we sent: ask once more, afresh.
        self._drop()
        return _exchange(self._connect(), method, target, data, headers)

    def _lines(self, answer: http.client.HTTPResponse) -> Iterator[str]:
        with self._failures():
            while line := answer.readline():
                yield line.decode("utf-8", errors="replace").rstrip("\r\n")

    def _target(self, path: str, params: Params | None) -> str:
        target = quote(self._prefix + path, safe="/%")
        if params:
            target += "?" + urlencode(params, doseq=True, quote_via=quote)
        if self._proxy is not None and self._tls is None:
            target = f"http://{_host_port(self._host, self._port)}{target}"  # a proxy's form
        return target

    def _connect(self) -> http.client.HTTPConnection:
        self._conn = conn = self._open()
        self._dial(conn)
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _open(self) -> http.client.HTTPConnection:
        proxy, timeout = self._proxy, self._timeout
        host, port = (self._host, self._port) if proxy is None else _proxy_address(proxy)
        if self._tls is None:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls)
        if proxy is not None:
            conn.set_tunnel(self._host, self._port, headers=_proxy_authorization(proxy))
        return conn

    def _dial(self, conn: http.client.HTTPConnection) -> None:
        try:
            conn.connect()
        except OSError as e:
            conn.close()
            raise UnreachableError(self.url, str(e) or type(e).__name__) from None

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """Turn what can go wrong on the wire into a ``ClientError`` naming the master."""
        try:
            yield
        except (OSError, http.client.HTTPException) as e:
            raise ClientError(f"talking to the corral master at {self.url} failed: {e!r}") from None


class Masters:
    """One ``Connection`` per master of a URL list (``masters.py``), used one at a time: a
    master that cannot be reached is left for the next, and the leader an answer names is
    asked from then on. Connection's interface."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float) -> None:
        self.url = url
        self._rotation = Rotation(url)
        self._conns = [Connection(u, headers, timeout) for u in self._rotation.urls]

    def request(
        self, method: str, path: str, params: Params | None = None, body: Any = None
    ) -> Response:
        """``Connection.request`` on the masters in the order ``failover`` leads."""
        steps: Failover[Response] = failover(self._rotation)
        got: Response | UnreachableError | None = None
        while True:
            try:
                step = steps.send(got)
            except StopIteration as done:
                answer: Response = done.value
                return answer
            if isinstance(step, Wait):
                time.sleep(step.seconds)
                got = None
                continue
            try:
                got = self._conns[step.index].request(method, path, params, body)
            except UnreachableError as e:
                got = e

    @contextmanager
    def stream(
        self, path: str, params: Params | None, headers: Mapping[str, str]
    ) -> Iterator[Iterator[str]]:
        """``Connection.stream`` from the first master that can be reached."""
        unreachable: UnreachableError | None = None
        for i in self._rotation.attempts():
            stack = ExitStack()
            try:
                lines = stack.enter_context(self._conns[i].stream(path, params, headers))
            except UnreachableError as e:
                unreachable = e
                continue
            self._rotation.at = i
            with stack:
                yield lines
            return
        assert unreachable is not None
        raise unreachable

    def close(self) -> None:
        """Close every master's connection and end the streams being read."""
        for conn in self._conns:
            conn.close()


class Blocking:
    """What the blocking clients share: the master's ``url`` (several: separated by commas)
    and ``token`` (``load_config()``'s when no URL is given), a ``Connection`` per master with
    the token on each request, and closing them.

    Raises ``ClientError`` for a URL that is not ``http(s)://HOST[:PORT][/PREFIX]``. Use as a
    context manager, or ``close()``.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float = 10.0
    ) -> None:
        if url is None:
            config = load_config()
            url, token = config.url, token or config.token
        self.url = url.rstrip("/")
        self._http = Masters(self.url, auth_headers(token), timeout)

    def close(self) -> None:
        """Close the connection."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    data: bytes | None,
    headers: dict[str, str],
) -> Response:
    conn.request(method, target, body=data, headers=headers)
    return _whole(conn.getresponse())


def _whole(answer: http.client.HTTPResponse) -> Response:
    content = answer.read()
    headers = {name.lower(): value for name, value in answer.getheaders()}
    return Response(answer.status, answer.reason or _phrase(answer.status), content, headers)


def _phrase(status: int) -> str:
    # The master always sends its reason; an HTTP/2 proxy in front of it sends none.
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    # Between requests nothing is due from the master: a readable socket means it hung up (or
    # sent what no request asked for); either way the connection cannot be used again.
    sock = conn.sock
    return sock is None or bool(select.select([sock], [], [], 0)[0])


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _proxy_for(scheme: str, host: str) -> SplitResult | None:
    """The proxy to reach ``host`` through, as httpx and curl choose it: ``HTTPS_PROXY`` (or
    ``HTTP_PROXY``) else ``ALL_PROXY``, unless ``NO_PROXY`` covers the host."""
    if not any(name.lower() in _PROXY_VARIABLES for name in os.environ):
        return None
    import urllib.request  # slow to import: only when a proxy is set at all

    proxies = urllib.request.getproxies_environment()
    value = proxies.get(scheme) or proxies.get("all")
    if not value or urllib.request.proxy_bypass(host):
        return None
    proxy = urlsplit(value if "://" in value else f"http://{value}")
    if proxy.scheme != "http" or not proxy.hostname:
        raise ClientError(f"unsupported proxy {value!r}: only http:// proxies can be used")
    return proxy


def _proxy_address(proxy: SplitResult) -> tuple[str, int]:
    return proxy.hostname or "", proxy.port or 80


def _proxy_authorization(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
