"""A small real HTTP proxy in front of the test Prometheus, as teams put one in front of theirs.

Prometheus has no authentication of its own; a reverse proxy adds it. This one listens on
a free port and routes on the first path segment, the rest of the path going to Prometheus:

- ``/bearer/...``: needs ``Authorization: Bearer <TOKEN>``, else 401 (as a proxy answers).
- ``/basic/...``: needs HTTP Basic ``USER:<PASSWORD>``, else 401.
- ``/status/<code>/...``: answers ``<code>`` with the request's query and Authorization
  echoed in the body (so a test proves the connector redacts them).
- ``/slow/...``: waits two seconds, then forwards (a timeout).
- ``/not-prometheus/...``: answers 200 with JSON that is not Prometheus' shape.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

TOKEN = "promtok-6b1e0f93d2-SECRET"
USER = "grafana-reader"
PASSWORD = "prompw-a47c2d19e5-SECRET"
ALL_SECRET_VALUES = (TOKEN, PASSWORD)
SLOW_SECONDS = 2.0


def start(upstream: str) -> ThreadingHTTPServer:
    """Start the proxy on a free loopback port, forwarding to ``upstream``.

    Args:
        upstream: Prometheus' base URL.

    Returns:
        The running server (``shutdown()`` and ``server_close()`` it).
    """

    class Handler(_Handler):
        target = upstream.rstrip("/")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    """The proxy's base URL."""
    return f"http://127.0.0.1:{server.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    target = ""

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        route, _, rest = parts.path.lstrip("/").partition("/")
        forward = f"/{rest}" + (f"?{parts.query}" if parts.query else "")
        auth = self.headers.get("Authorization", "")
        if route == "bearer":
            if auth != f"Bearer {TOKEN}":
                return self._answer(401, {"error": "invalid bearer token"})
            return self._forward(forward)
        if route == "basic":
            pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if auth != f"Basic {pair}":
                return self._answer(401, {"error": "invalid credentials"})
            return self._forward(forward)
        if route == "status":
            code, _, _ = rest.partition("/")
            return self._answer(int(code), {"query": parts.query, "authorization": auth})
        if route == "slow":
            time.sleep(SLOW_SECONDS)
            return self._forward(forward)
        if route == "not-prometheus":
            return self._answer(200, {"hello": "world", "items": [1, 2]})
        return self._answer(404, {"error": f"no route {route!r}"})

    def _forward(self, path: str) -> None:
        try:
            with urllib.request.urlopen(f"{self.target}{path}", timeout=30) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        self._send(status, body)

    def _answer(self, status: int, body: object) -> None:
        self._send(status, json.dumps(body).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client may have given up (the timeout test).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)
