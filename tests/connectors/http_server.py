"""A small real HTTP server the HTTP-source tests record their cassettes against.

It listens on a free port (several test runs and xdist workers can run side by side); the
vcr config records its address as a placeholder host, so cassettes replay on any port.
Endpoints return the shapes real metric APIs return (numbers, numeric strings, Prometheus
vectors, nulls, errors, flaky and rate-limited responses, auth-protected values), and the
``/fault/...`` endpoints misbehave at the byte level (trickled bodies and headers, huge
bodies, Content-Length that lies) for the deadline tests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
#: URL of the session's test API, set by the ``http_base_url`` fixture once it runs (the
#: port is chosen by the system); prefer the fixture's value.
BASE_URL = f"http://{HOST}:0"

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
    "/nps": (200, '{"data": {"nps": {"score": 41, "responses": 120}}}'),
    "/huge-exponent": (200, '{"total": 1e999999999, "text": "1e200000", "ok": 7}'),
}


class Handler(BaseHTTPRequestHandler):
    """Routes by path; see STATIC and the dynamic endpoints in ``_route``."""

    hits: ClassVar[Counter[str]] = Counter()
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        if self.path.startswith("/fault/"):
            # An OSError is the client giving up (its deadline passed): expected here.
            with contextlib.suppress(OSError):
                self._fault(urlsplit(self.path).path, parse_qs(urlsplit(self.path).query))
            return
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
            host, port = self.server.server_address[:2]
            self._send(302, "", {"Location": f"http://{host}:{port}/number"})
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
        elif path.startswith("/echo-status/"):
            # An error answer (429, 5xx...) quoting the credentials it was sent, as some APIs
            # do: the source must redact them from its message.
            code = int(path.rsplit("/", 1)[1])
            echoed = {"error": "refused", "authorization": self.headers.get("Authorization")}
            self._send(code, json.dumps({**echoed, "query": query}))
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

    def _fault(self, path: str, query: dict[str, list[str]]) -> None:
        """Byte-level misbehaviour; the socket is written directly, byte by byte if asked."""
        every = float(query.get("every", ["1"])[0])
        size = int(query.get("bytes", ["100"])[0])
        body = b'{"total": 1}'.ljust(size)
        if path == "/fault/trickle-body":
            # Headers at once, then the body one byte every `every` seconds.
            self._head(200, len(body))
            self._trickle(body, every)
        elif path == "/fault/slow-headers":
            # The status line, then the headers one byte every `every` seconds.
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            head = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            self._trickle(head.encode(), every)
            self.wfile.write(body)
        elif path == "/fault/huge":
            # `mib` MiB of valid JSON; with declare=0 no Content-Length (read to the end).
            pad = 1024 * 1024 * int(query.get("mib", ["20"])[0])
            declare = query.get("declare", ["1"])[0] == "1"
            data = b'{"total": 1, "pad": "' + b"x" * pad + b'"}'
            self._head(200, len(data) if declare else None)
            for start in range(0, len(data), 1 << 16):
                self.wfile.write(data[start : start + (1 << 16)])
        elif path == "/fault/length-lie":
            # Declares `declared` bytes, sends `bytes`, then holds or closes the connection.
            self._head(200, int(query.get("declared", ["1000"])[0]))
            self.wfile.write(body)
            self.wfile.flush()
            if query.get("then", ["hold"])[0] == "hold":
                time.sleep(float(query.get("hold", ["30"])[0]))
            self.close_connection = True

    def _head(self, status: int, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if length is not None:
            self.send_header("Content-Length", str(length))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.flush()

    def _trickle(self, data: bytes, every: float) -> None:
        for byte in data:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(every)

    def _auth(self, ok: bool) -> None:
        if ok:
            self._send(200, '{"total": 99}')
        else:
            self._send(401, '{"error": "invalid credentials"}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a trickling handler must not hold the test run at exit

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up mid-answer are what the fault endpoints are for


def start(tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """Start the server on a free port in a daemon thread; ``shutdown()`` stops it.

    Args:
        tls: A server-side TLS context, to serve HTTPS instead of HTTP.

    Returns:
        The running server (its URL: :func:`url_of`).
    """
    server = _Server((HOST, 0), Handler)  # port 0: the system picks a free one
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    """The base URL of a running server, e.g. ``http://127.0.0.1:40123``."""
    host, port = server.server_address[:2]
    scheme = "https" if isinstance(server.socket, ssl.SSLSocket) else "http"
    return f"{scheme}://{host!s}:{port}"
