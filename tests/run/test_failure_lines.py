"""What a run says about failures: one short line per failed KR, alerts without a route.

A failed source is reported by the run (and in the status reason) as one short line; the
whole error is stored with the measurement for ``okr explain``. Without ``alerts.yaml`` the
alerts are recorded, not "failed", and the run says once how to route them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.update import RunRequest, run_update
from tests.ports import free_port

NOW = datetime.now(UTC).replace(microsecond=0)


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>\n<body>\n<h1>Not Found</h1>\n" + b"<p>gone</p>\n" * 30 + b"</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def not_found_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def write_project(root: Path, not_found_url: str, down_port: int) -> Path:
    start = (NOW - timedelta(days=30)).date()
    end = (NOW + timedelta(days=60)).date()
    (root / "okrs").mkdir(parents=True)
    (root / "okrs" / "q.yaml").write_text(
        f"""\
cycle: {{name: Q, start: {start}, end: {end}}}
objectives:
  - id: web
    title: A fast, reachable site
    owner: web@example.com
    key_results:
      - id: visits
        title: Visits from 10 to 20
        baseline: 10
        target: 20
        source: {{type: http, connection: analytics, path: /api/v1/metrics/visits,
                  value_path: $.total, retries: 0}}
      - id: signups
        title: Signups from 10 to 20
        baseline: 10
        target: 20
        source: {{type: http, url: "http://127.0.0.1:{down_port}/signups",
                  value_path: $.total, retries: 0}}
      - id: orders
        title: Orders from 10 to 20
        baseline: 10
        target: 20
        source: {{type: sql, connection: warehouse, query: "SELECT count(*) FROM nope"}}
"""
    )
    (root / ".env").write_text(
        f"OKR_CONNECTIONS__ANALYTICS__URL={not_found_url}\n"
        f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{root / 'wh.db'}\n"
    )
    return root


def run_twice(project: Path) -> Any:
    """Two runs an hour apart: the second fires the source alerts (pending for 2)."""
    run_update(RunRequest(project_dir=project, all_krs=True, as_of=NOW - timedelta(hours=2)))
    return run_update(RunRequest(project_dir=project, all_krs=True, as_of=NOW - timedelta(hours=1)))


def test_each_failure_is_one_short_line_and_the_detail_is_stored(
    tmp_path: Path, not_found_url: str
) -> None:
    port = free_port()
    summary = run_twice(write_project(tmp_path, not_found_url, port))
    failed = dict(summary.failed)
    assert failed == {
        "web/signups": f"cannot connect to 127.0.0.1:{port} (connection refused)",
        "web/visits": (
            f"analytics: HTTP 404 Not Found from {not_found_url.removeprefix('http://')}"
            "/api/v1/metrics/visits"
        ),
        "web/orders": "warehouse: the query failed: no such table: nope",
    }
    store = Store.open(f"sqlite:///{tmp_path / '.okr' / 'okr.db'}")
    try:
        with store.engine.connect() as conn:
            reasons = dict(conn.execute(sa.text("SELECT kr_id, reason FROM evaluations")).all())
            errors = [
                row[0]
                for row in conn.execute(sa.text("SELECT error_message FROM measurements")).all()
            ]
    finally:
        store.close()
    assert {r for r in reasons.values()} <= {f"source failed: {m}" for m in failed.values()}
    # The whole story is kept for 'okr explain': the request and the driver's words.
    assert any("Connection refused" in e and "GET http://127.0.0.1" in e for e in errors)
    assert any("<h1>Not Found</h1>" in e for e in errors)
    assert all("\n" not in e for e in errors)


def test_without_alerts_yaml_alerts_are_recorded_not_failed(
    tmp_path: Path, not_found_url: str
) -> None:
    summary = run_twice(write_project(tmp_path, not_found_url, free_port()))
    alerts = summary.alerts
    assert alerts.deliveries == {"recorded": 3}  # source_failing of each KR
    assert alerts.failed == []
    assert alerts.hint is not None
    assert "no alerts.yaml" in alerts.hint and "README" in alerts.hint


def test_a_route_with_a_channel_that_fails_is_still_failed(
    tmp_path: Path, not_found_url: str
) -> None:
    project = write_project(tmp_path, not_found_url, free_port())
    dead = free_port()
    (project / "alerts.yaml").write_text(
        f"default_route:\n  channels: ['json://127.0.0.1:{dead}/x']\n"
    )
    summary = run_twice(project)
    assert summary.alerts.deliveries == {"failed": 3}
    assert summary.alerts.hint is None
    assert summary.alerts.failed and all(
        f.startswith(f"json://127.0.0.1:{dead}") and f.count(f"json://127.0.0.1:{dead}") == 1
        for f in summary.alerts.failed
    )
