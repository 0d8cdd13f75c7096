"""A local JSON API with a quota: it answers 429 to any request above N in one second.

The window slides: a request is refused when, counting it, more than ``quota`` requests
arrived in the second before it (the strictest reading of "N requests a second"). The
server counts what it answered and refused, so a test can say that no request was ever
refused. ``GET /value?kr=7`` answers ``{"value": 7}``; ``GET /flaky?kr=7`` answers 503 the
first time for each ``kr``, then as ``/value``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.ports import free_port


class QuotaServer(ThreadingHTTPServer):
    """The server and its counts."""

    daemon_threads = True

    def __init__(self, port: int, quota: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.quota = quota
        self.arrivals: deque[float] = deque()
        self.answered = 0
        self.refused = 0
        self.peak = 0  # the most requests seen in one second
        self.first: float | None = None
        self.last: float | None = None
        self.lock = threading.Lock()
        self.failed_once: set[str] = set()

    def admit(self) -> bool:
        """Count one arrival; False when it is over the quota (then it is not counted)."""
        now = time.monotonic()
        with self.lock:
            while self.arrivals and self.arrivals[0] <= now - 1.0:
                self.arrivals.popleft()
            if len(self.arrivals) + 1 > self.quota:
                self.refused += 1
                return False
            self.arrivals.append(now)
            self.answered += 1
            self.peak = max(self.peak, len(self.arrivals))
            self.first = self.first if self.first is not None else now
            self.last = now
            return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API
    # Headers and body are written separately: with Nagle's algorithm the body would wait
    # for the client's delayed ACK, 40 ms an answer that no real API adds.
    disable_nagle_algorithm = True
    server: QuotaServer

    def do_GET(self) -> None:
        if not self.server.admit():
            self._send(429, {"error": "rate limit exceeded"}, {"Retry-After": "1"})
            return
        parts = urlsplit(self.path)
        kr = parse_qs(parts.query).get("kr", ["0"])[0]
        if parts.path == "/flaky":
            with self.server.lock:
                first = kr not in self.server.failed_once
                self.server.failed_once.add(kr)
            if first:
                self._send(503, {"error": "try again"})
                return
        self._send(200, {"value": int(kr)})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def quota_api(quota: int) -> Iterator[QuotaServer]:
    """Run a :class:`QuotaServer` on a free port for the block; ``server.server_port``."""
    server = QuotaServer(free_port(), quota)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def http_sources(count: int, connection: str = "quota") -> list[dict[str, Any]]:
    """``count`` HTTP KR sources on ``connection``, each asking for its own number."""
    return [
        {
            "type": "http",
            "connection": connection,
            "path": "/value",
            "params": {"kr": str(i)},
            "value_path": "$.value",
        }
        for i in range(count)
    ]
