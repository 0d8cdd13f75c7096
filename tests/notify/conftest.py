"""Real receivers for the sender tests: an HTTP endpoint and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller

from okr_pipeline.okr_core.alerting.messages import Message, render
from okr_pipeline.okr_core.alerting.model import AlertKind, KrAlertInput, Notification, Transition
from okr_pipeline.okr_core.alerting.routing import Route
from tests.ports import free_port

NOW = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)


@dataclass
class Request:
    """One request the HTTP receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def data(self) -> dict[str, Any]:
        """The JSON or form-encoded body as a dict."""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return dict(json.loads(self.body))
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class HttpReceiver:
    """A local webhook endpoint: paths under /fail answer 500, everything else 200.

    While ``down`` is set, every path answers 503 (a receiver that fails, then recovers).
    """

    port: int
    requests: list[Request] = field(default_factory=list)
    down: bool = False

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path.split("?")[0] == path]


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A ThreadingHTTPServer on a free port, collecting every request."""
    state = HttpReceiver(port=0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, self.path, dict(self.headers), self.rfile.read(length))
            with lock:
                state.requests.append(request)
            failing = self.path.startswith("/fail") or state.down
            self.send_response((503 if state.down else 500) if failing else 200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"receiver is down" if failing else b"ok")

        do_POST = do_PUT = do_GET = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class SmtpReceiver:
    port: int
    mails: list[Mail] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """An aiosmtpd server on 127.0.0.1: plain SMTP, no TLS, no auth."""
    state = SmtpReceiver(port=free_port())
    controller = Controller(state, hostname="127.0.0.1", port=state.port)
    controller.start()
    try:
        yield state
    finally:
        controller.stop()


def notification(
    ref: str = "podcasts/listeners",
    *,
    kr_id: int = 1,
    kind: AlertKind = "off_track",
    transition: Transition = "firing",
    owner: str = "maya@example.com",
    delivery: Any = "sent",
) -> Notification:
    objective = ref.split("/")[0]
    kr = KrAlertInput(
        kr_id=kr_id,
        ref=ref,
        objective_key=objective,
        title=f"Title of {ref}",
        owner=owner,
        unit="listeners",
        status="off_track",
        reason="behind pace",
        value=Decimal("1200"),
        target=Decimal("5000"),
        progress=0.24,
        expected_progress=0.5,
        forecast_value=Decimal("2500"),
        forecast_score=0.5,
        error="HTTP 503 from api" if kind == "source_failing" else None,
        connection="analytics" if kind == "source_failing" else None,
        connection_owner=None,
    )
    return Notification(kind, transition, kr, owner, delivery)


def message(route: str, channels: list[str], *notifications: Notification) -> Message:
    """A real grouped message for one route."""
    return render(Route(name=route, owners=["*"], channels=channels), list(notifications), None)
