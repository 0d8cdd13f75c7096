"""A 503 from a busy Prefect server is asked again within milliseconds (flows/busy_retry.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from prefect.client.orchestration import SyncPrefectClient

from okr_pipeline.flows.busy_retry import BUSY_PAUSES, retry_busy_quickly

LIMIT = {
    "id": "0b7bd4c6-3f5e-4a0b-8f0e-1c1f2a3b4c5d",
    "created": "2026-11-26T10:00:00Z",
    "updated": "2026-11-26T10:00:00Z",
    "name": "okr:warehouse:1234abcd",
    "limit": 4,
    "active": True,
    "active_slots": 1,
    "slot_decay_per_second": 0.0,
    "denied_slots": 0,
}


class _Busy(BaseHTTPRequestHandler):
    """Answers 503 to the first ``busy`` requests, then the limit above."""

    busy = 0
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        if len(type(self).seen) <= type(self).busy:
            self._answer(503, {"exception_message": "Service Unavailable"})
        else:
            self._answer(200, LIMIT)

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def busy_server() -> Iterator[tuple[str, type[_Busy]]]:
    handler = type("Handler", (_Busy,), {"busy": 0, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api", handler
    server.shutdown()
    server.server_close()


def _client(api: str, slept: list[float]) -> SyncPrefectClient:
    client = SyncPrefectClient(api)
    return retry_busy_quickly(client, sleep=slept.append)


def test_a_busy_server_is_asked_again_after_short_pauses(
    busy_server: tuple[str, type[_Busy]], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, handler = busy_server
    handler.busy = 3
    prefect_waits: list[float] = []
    monkeypatch.setattr("prefect.client.base.time.sleep", prefect_waits.append)
    slept: list[float] = []
    limit = _client(api, slept).read_global_concurrency_limit_by_name(LIMIT["name"])  # type: ignore[arg-type]
    assert (limit.name, limit.limit) == (LIMIT["name"], 4)
    assert len(handler.seen) == 4
    assert slept == list(BUSY_PAUSES[:3])
    assert prefect_waits == []  # Prefect's own back-off of 2 s and more never started


def test_a_server_busy_for_longer_falls_back_to_prefects_retries(
    busy_server: tuple[str, type[_Busy]], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, handler = busy_server
    handler.busy = len(BUSY_PAUSES) + 2  # every quick try of Prefect's first attempt, and one
    prefect_waits: list[float] = []
    monkeypatch.setattr("prefect.client.base.time.sleep", prefect_waits.append)
    slept: list[float] = []
    limit = _client(api, slept).read_global_concurrency_limit_by_name(LIMIT["name"])  # type: ignore[arg-type]
    assert limit.active_slots == 1
    assert len(prefect_waits) == 1  # Prefect waited once, then its second attempt got through
    assert slept == [*BUSY_PAUSES, BUSY_PAUSES[0]]


def test_other_clients_keep_prefects_behaviour(busy_server: tuple[str, type[_Busy]]) -> None:
    api, _ = busy_server
    changed = _client(api, [])
    other = SyncPrefectClient(api)
    assert "_send_with_retry" in vars(changed._client)
    assert "_send_with_retry" not in vars(other._client)
