"""A small real HTTP server the HTTP-source tests record their cassettes against.

It listens on a fixed port so that recorded URIs match on replay. Endpoints return the
shapes real metric APIs return (numbers, numeric strings, Prometheus vectors, nulls,
errors, flaky and rate-limited responses, auth-protected values).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
PORT = 18765
BASE_URL = f"http://{HOST}:{PORT}"

# Distinctive values, so a grep over the cassettes proves none was recorded.
SECRETS = {
    "api_token": "tok-3f9a1c77e2-SECRET",
    "api_password": "pw-77d2e0a9b1-SECRET",
    "api_key": "key-b41c9e5d03-SECRET",
}
# Sent by the "api" connection's headers; connection headers are secrets too.
TENANT_HEADER_VALUE = "hdr-5e61aa90c4-SECRET"
ALL_SECRET_VALUES = (*SECRETS.values(), TENANT_HEADER_VALUE)
BASIC_USER = "metrics-reader"

STATIC: dict[str, tuple[int, str]] = {
    "/number": (200, '{"total": 42}'),
    "/decimal": (200, '{"total": 12.345678901234567890123}'),
    "/string": (200, '{"total": "42.5"}'),
    "/negative-exp": (200, '{"total": "-1.5e3"}'),
    "/prometheus": (
        200,
        '{"status":"success","data":{"resultType":"vector",'
        '"result":[{"metric":{},"value":[1700000000,"42.5"]}]}}',
    ),
    "/prometheus-empty": (200, '{"status":"success","data":{"resultType":"vector","result":[]}}'),
    "/prometheus-nan": (
        200,
        '{"status":"success","data":{"result":[{"value":[1700000000,"NaN"]}]}}',
    ),
    "/null": (200, '{"total": null}'),
    "/nan-literal": (200, '{"total": NaN}'),
    "/infinity": (200, '{"total": "+Inf"}'),
    "/text": (200, '{"total": "abc"}'),
    "/object": (200, '{"total": {"a": 1}}'),
    "/bool": (200, '{"done": true}'),
    "/many": (200, '{"items": [{"v": 1}, {"v": 2}, {"v": 3}]}'),
    "/empty-list": (200, "[]"),
    "/not-json": (200, "<html><body>Service dashboard</body></html>"),
    "/empty-body": (200, ""),
}


class Handler(BaseHTTPRequestHandler):
    """Routes by path; see STATIC and the dynamic endpoints in ``_route``."""

    hits: ClassVar[Counter[str]] = Counter()
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        self._route(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._route(self.rfile.read(length))

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _route(self, body: bytes | None) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path in STATIC:
            self._send(*STATIC[path])
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(code, json.dumps({"error": f"status {code} for you", "detail": "x" * 500}))
        elif path.startswith("/flaky/"):
            # Fails `fail` times with `code` (and Retry-After if given), then succeeds.
            with self.lock:
                self.hits[self.path] += 1
                hit = self.hits[self.path]
            if hit <= int(query.get("fail", "1")):
                extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
                self._send(int(query.get("code", "500")), '{"error": "try later"}', extra)
            else:
                self._send(200, json.dumps({"total": hit}))
        elif path == "/slow":
            time.sleep(float(query.get("seconds", "1")))
            self._send(200, '{"total": 1}')
        elif path == "/redirect":
            self._send(302, "", {"Location": f"{BASE_URL}/number"})
        elif path == "/bearer":
            self._auth(self.headers.get("Authorization") == f"Bearer {SECRETS['api_token']}")
        elif path == "/basic":
            pair = f"{BASIC_USER}:{SECRETS['api_password']}".encode()
            expected = "Basic " + base64.b64encode(pair).decode()
            self._auth(self.headers.get("Authorization") == expected)
        elif path == "/apikey-header":
            self._auth(self.headers.get("X-API-Key") == SECRETS["api_key"])
        elif path == "/apikey-query":
            self._auth(query.get("key") == SECRETS["api_key"])
        elif path == "/leaky-error":
            # A badly behaved API that echoes the credential it rejects.
            self._send(403, json.dumps({"error": f"token {SECRETS['api_token']} not allowed"}))
        elif path == "/echo":
            # Returns what it received, secrets included: the cassette scrubber must remove
            # them and the source must not leak them.
            received = {
                "total": 1,
                "query": query,
                "x_tenant": self.headers.get("X-Tenant"),
                "authorization": self.headers.get("Authorization"),
                "body": json.loads(body) if body else None,
            }
            self._send(200, json.dumps(received))
        elif path == "/query" and body is not None:
            request = json.loads(body)
            self._send(200, json.dumps({"result": {"value": request.get("metric_value")}}))
        else:
            self._send(404, json.dumps({"error": f"no route {path}"}))

    def _auth(self, ok: bool) -> None:
        if ok:
            self._send(200, '{"total": 99}')
        else:
            self._send(401, '{"error": "invalid credentials"}')


def start() -> ThreadingHTTPServer:
    """Start the server in a daemon thread and return it (call ``shutdown()`` to stop)."""
    server = ThreadingHTTPServer((HOST, PORT), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
