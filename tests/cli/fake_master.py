"""A fake master for the client's and the CLI's tests: a real HTTP/1.1 server on a free port
whose answers come from a handler (an ``httpx.Request`` in, an ``httpx.Response`` out).

The blocking client talks to it over a real socket, kept alive between requests as with the
master; the handler sees what the client sent: method, URL (the whole URL a proxy is asked
for), headers and body, and in ``extensions["client"]`` the address it came from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Handler = Callable[[httpx.Request], httpx.Response]


class _Exchange(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn does
    handle_request: Handler

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.command == "CONNECT":
            target = f"http://{self.path}"  # CONNECT names host:port only
        elif "://" in self.path:
            target = self.path  # a proxy is asked for the whole URL
        else:
            target = f"http://{self.headers['Host']}{self.path}"
        request = httpx.Request(
            self.command,
            target,
            headers=list(self.headers.items()),
            content=body,
            extensions={"client": self.client_address},  # which connection it came on
        )
        response = type(self).handle_request(request)
        content = response.read()
        self.send_response(response.status_code)
        for name, value in response.headers.multi_items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_DELETE = do_CONNECT = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the handler records what matters


@contextmanager
def serving(handle: Handler) -> Iterator[str]:
    """Answer requests with ``handle`` until the block ends; yields the server's URL."""
    exchange = type("Exchange", (_Exchange,), {"handle_request": staticmethod(handle)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), exchange)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
