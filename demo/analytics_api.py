"""A small local analytics API for the demo, answering from the demo warehouse.

It also receives the demo's alerts: a JSON webhook at ``/hooks/okr`` that appends every
message to ``alerts-inbox.jsonl`` in the demo folder.

It behaves like the hosted analytics tools the ``http`` source is made for: JSON answers,
numbers sent as strings, a bearer token required, an ``as_of`` query parameter.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse, urlsplit

from okr_pipeline.okr_core.settings import load_settings

TOKEN_SECRET = "analytics_token"
WEBHOOK_PATH = "/hooks/okr"
INBOX = "alerts-inbox.jsonl"
_inbox_lock = threading.Lock()


def _window(as_of: datetime, days: int) -> tuple[str, str]:
    fmt = "%Y-%m-%d %H:%M:%S"
    end = as_of.astimezone(UTC)
    return (end - timedelta(days=days)).strftime(fmt), end.strftime(fmt)


def _ctr(db: sqlite3.Connection, as_of: datetime) -> dict[str, Any]:
    start, end = _window(as_of, 7)
    shown, clicked = db.execute(
        "SELECT sum(shown), sum(clicked) FROM recommendations WHERE ts >= ? AND ts < ?",
        (start, end),
    ).fetchone()
    value = None if not shown else f"{100 * clicked / shown:.2f}"
    return {"metric": "recommendation_ctr", "unit": "%", "data": {"value": value}}


def _uptime(db: sqlite3.Connection, as_of: datetime) -> dict[str, Any]:
    start, end = _window(as_of, 7)
    (ratio,) = db.execute(
        "SELECT avg(up) FROM uptime_checks WHERE ts >= ? AND ts < ?", (start, end)
    ).fetchone()
    # Shaped like a Prometheus instant query: the value is a string beside a timestamp.
    result = (
        []
        if ratio is None
        else [
            {
                "metric": {"job": "podcast-api"},
                "value": [int(as_of.timestamp()), f"{100 * ratio:.3f}"],
            }
        ]
    )
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


ROUTES: dict[str, Callable[[sqlite3.Connection, datetime], dict[str, Any]]] = {
    "/api/v1/metrics/recommendation-ctr": _ctr,
    "/api/v1/query/uptime": _uptime,
}


def make_server(warehouse: Path, token: str, port: int) -> ThreadingHTTPServer:
    """Build (not start) the API server on 127.0.0.1:``port``."""
    inbox = warehouse.parent / INBOX

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            # The demo's alert channel: json:// webhooks land in alerts-inbox.jsonl.
            if urlparse(self.path).path != WEBHOOK_PATH:
                return self._send(404, {"error": f"no such endpoint {self.path}"})
            length = int(self.headers.get("Content-Length", 0))
            try:
                message = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self._send(400, {"error": "not JSON"})
            with _inbox_lock, inbox.open("a", encoding="utf-8") as out:
                out.write(json.dumps(message) + "\n")
            self._send(200, {"ok": True})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            route = ROUTES.get(url.path)
            if route is None:
                return self._send(404, {"error": f"no such endpoint {url.path}"})
            if self.headers.get("Authorization") != f"Bearer {token}":
                return self._send(401, {"error": "missing or wrong bearer token"})
            query = parse_qs(url.query)
            try:
                as_of = datetime.fromisoformat(query.get("as_of", [""])[0])
            except ValueError:
                as_of = datetime.now(UTC)
            if as_of.tzinfo is None:
                as_of = as_of.replace(tzinfo=UTC)
            with sqlite3.connect(f"file:{warehouse}?mode=ro", uri=True) as db:
                body = route(db, as_of)
            self._send(200, body)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the demo's output is the status table, not an access log

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def start_in_background(warehouse: Path, token: str, port: int) -> ThreadingHTTPServer:
    """Start the API in a daemon thread; call ``shutdown()`` on the result to stop it."""
    server = make_server(warehouse, token, port)
    threading.Thread(target=server.serve_forever, name="demo-analytics-api", daemon=True).start()
    return server


def serve_forever(project: Path, port: int | None = None) -> None:
    """Serve the demo project's API in the foreground until interrupted.

    Args:
        project: The demo project's folder.
        port: The port; None: the one the project's ``.env`` names (``okr demo`` chose it).
    """
    settings = load_settings(project)
    token = settings.secrets.get(TOKEN_SECRET)
    if token is None:
        from okr_pipeline.okr_core.errors import ConfigError

        raise ConfigError(
            f"'{project}' is not a demo project (no secret '{TOKEN_SECRET}' in its .env); "
            "create one with 'okr demo'"
        )
    if port is None:
        connection = settings.connections.get("analytics")
        url = connection.url.get_secret_value() if connection else ""
        port = urlsplit(url).port or 8765
    server = make_server(project.resolve() / "warehouse.db", token.get_secret_value(), port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
