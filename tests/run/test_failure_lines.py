"""What a run says about failures: one short line per failed KR, alerts without a route.

A failed source is reported by the run (and in the status reason) as one short line; the
whole error is stored with the measurement for ``okr explain``. Without ``alerts.yaml`` the
alerts are recorded, not "failed", and the run says once how to route them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.update import RunRequest, run_update
from okr_pipeline.web.app import create_app
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
    # Stored as `recorded`, without an error: no reader mistakes them for failures.
    store = Store.open(f"sqlite:///{tmp_path / '.okr' / 'okr.db'}")
    try:
        stored = [(a.route, a.channel, a.delivery, a.error) for a in store.recent_alerts()]
        states = store.alert_states()
    finally:
        store.close()
    assert stored == [("default", "", "recorded", None)] * 3
    # `recorded` counts as delivered: the alerts fired (they are not left pending, to be
    # tried again next run, as a failed send would leave them).
    assert len(states) == 3
    assert all(s.phase == "firing" and s.fired_at is not None for s in states.values())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "COLUMNS": "160"}
    listed = _okr(tmp_path, env, "alerts")
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "source_failing" in line]
    assert len(rows) == 3 and all("recorded" in row for row in rows), listed.stdout
    assert "failed" not in listed.stdout and "not sent" not in listed.stdout
    as_json = json.loads(_okr(tmp_path, env, "alerts", "--json").stdout)
    assert [(a["delivery"], a["error"]) for a in as_json] == [("recorded", None)] * 3
    # And so do the dashboard's alerts page and its JSON API.
    with TestClient(create_app(load_settings(tmp_path), clock=lambda: NOW)) as client:
        api = client.get("/api/alerts").json()
        page = client.get("/alerts").text
    assert [(a["delivery"], a["error"]) for a in api] == [("recorded", None)] * 3
    assert page.count('data-delivery="recorded"') == 3 and 'data-delivery="failed"' not in page


def _okr(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "okr_pipeline", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


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
