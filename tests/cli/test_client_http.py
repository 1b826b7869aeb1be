"""The blocking client's HTTP (``corral.client._http``) against real sockets: the kept-alive
connection and what happens when the master closes it, a path prefix, proxies, timeouts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from corral.client import ApiError, Client, ClientError, UnreachableError
from tests.cli.fake_master import serving
from tests.cli.samples import job_view
from tests.support.cluster import free_port

INFO = b'{"name": "corral", "version": "1"}'


def ok(seen: list[httpx.Request]) -> AbstractContextManager[str]:
    """A master that answers every request with its info, remembering each request."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"name": "corral", "version": "1"})

    return serving(handle)


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass


class Dropping(Quiet):
    """Answers the first request of each connection; drops the connection on the second
    without an answer, as a master closing an idle connection just as a request comes."""

    server: Server

    def setup(self) -> None:
        super().setup()
        self.count = 0

    def _serve(self) -> None:
        self.count += 1
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.client_address[1], self.count))
        if self.count == 2:
            self.close_connection = True
            return
        body = INFO
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _serve


class OneEach(Quiet):
    """Answers one request per connection, then hangs up (as a master whose keep-alive ran
    out) without saying so in the answer."""

    server: Server

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.client_address[1], 1))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = INFO if self.command == "GET" else job_view().model_dump_json().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_POST = do_GET

    def finish(self) -> None:
        super().finish()
        self.connection.close()
        self.server.hung_up.set()


class Streaming(Quiet):
    """Sends one event, then keeps the stream open until the test is done with it."""

    server: Server

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")  # no length: the stream lasts until closed
        self.end_headers()
        event = {"id": 1, "time": "2025-01-02T03:04:05Z", "type": "task_state"}
        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.flush()
        self.server.hung_up.wait(30)


class Reasonless(Quiet):
    """Answers 503 with an empty reason phrase."""

    def do_GET(self) -> None:
        self.send_response(503, "")
        self.send_header("Content-Length", "0")
        self.end_headers()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, int, int]]
    hung_up: threading.Event


@contextmanager
def running(handler: type[BaseHTTPRequestHandler]) -> Iterator[Server]:
    """A server of ``handler`` on a free port, until the block ends."""
    server = Server(("127.0.0.1", 0), handler)
    server.seen, server.hung_up = [], threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def url_of(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_requests_of_one_client_share_one_kept_alive_connection() -> None:
    seen: list[httpx.Request] = []
    with ok(seen) as url, Client(url) as client:
        client.info()
        client.info()
    assert len(seen) == 2
    assert seen[0].extensions["client"] == seen[1].extensions["client"]


def test_a_get_on_a_connection_the_master_dropped_is_asked_again_on_a_new_one() -> None:
    with running(Dropping) as server, Client(url_of(server)) as client:
        client.info()
        assert client.info().name == "corral"
    first, dropped, fresh = server.seen
    assert dropped == ("GET", first[1], 2)  # the second request came on the first connection,
    assert fresh[1] != first[1] and fresh[2] == 1  # unanswered: asked again on a new one


def test_a_post_on_a_connection_the_master_dropped_is_not_sent_twice() -> None:
    with running(Dropping) as server, Client(url_of(server)) as client:
        client.info()
        with pytest.raises(ClientError, match="talking to the corral master at .* failed"):
            client.kill_job("j")
        assert [command for command, _, _ in server.seen] == ["GET", "POST"]
        client.info()  # the client goes on, on a new connection
    assert len(server.seen) == 3


def test_a_connection_the_master_hung_up_while_idle_is_not_used_again() -> None:
    with running(OneEach) as server, Client(url_of(server)) as client:
        client.info()
        assert server.hung_up.wait(10), "the server did not hang up"
        client.kill_job("j")  # a POST, never sent twice: it must go on a new connection
    assert [command for command, _, _ in server.seen] == ["GET", "POST"]
    assert server.seen[0][1] != server.seen[1][1]


def test_closing_the_client_ends_a_stream_read_in_another_thread() -> None:
    with running(Streaming) as server, Client(url_of(server)) as client:
        seen: list[int] = []
        first = threading.Event()

        def follow() -> None:
            for event in client.events():
                seen.append(event.id)
                first.set()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        assert first.wait(10), "no event came"
        client.close()
        reader.join(10)
        alive = reader.is_alive()
        server.hung_up.set()
    assert not alive and seen == [1]


def test_a_url_with_a_path_prefix_puts_the_api_under_it() -> None:
    seen: list[httpx.Request] = []
    with ok(seen) as url, Client(f"{url}/corral/") as client:
        client.info()
    assert seen[0].url.path == "/corral/api/v1/info"


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://m", "http://:80", "http://m:port"])
def test_a_url_no_request_can_go_to_is_refused_when_the_client_is_made(url: str) -> None:
    with pytest.raises(ClientError, match="invalid master URL"):
        Client(url)


def test_an_answer_slower_than_the_timeout_is_a_client_error() -> None:
    release = threading.Event()

    def stall(request: httpx.Request) -> httpx.Response:
        release.wait(10)
        return httpx.Response(200, json={})

    with serving(stall) as url, Client(url, timeout=0.2) as client:
        with pytest.raises(ClientError, match="timed out"):
            client.info()
        release.set()


def test_http_proxy_is_asked_for_the_whole_url(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    master = f"http://127.0.0.1:{free_port()}"  # nobody listens: only the proxy answers
    with ok(seen) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.replace("http://", "http://ada:s%40cret@"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with Client(master, "tok") as client:
            client.info()
    assert str(seen[0].url) == f"{master}/api/v1/info"
    assert seen[0].headers["proxy-authorization"] == "Basic YWRhOnNAY3JldA=="
    assert seen[0].headers["authorization"] == "Bearer tok"


def test_no_proxy_names_the_hosts_reached_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    with ok(seen) as url:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        with Client(url) as client:
            client.info()
    assert seen[0].url.path == "/api/v1/info"


def test_https_goes_through_a_proxy_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(403)

    with serving(refuse) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with Client("https://master.example:8443") as client:
            with pytest.raises(UnreachableError, match="master.example:8443 is not reachable"):
                client.info()
    assert [(r.method, r.url.host, r.url.port) for r in seen] == [
        ("CONNECT", "master.example", 8443)
    ]


def test_a_socks_proxy_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ClientError, match="only http:// proxies"):
        Client("http://master.example")


def test_an_error_status_without_a_reason_phrase_gets_the_standard_one() -> None:
    # The master always sends one; a proxy speaking HTTP/2 to it may not.
    with running(Reasonless) as server, Client(url_of(server)) as client:
        with pytest.raises(ApiError, match="HTTP 503 Service Unavailable"):
            client.info()
