"""A simulated quarter: the flow runs weekly while the metric moves; statuses and alerts
must follow, run by run, exactly as the semantics say (pending, firing, repeat, resolved,
flapping suppressed)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from okr_pipeline.flows.update import update_key_results
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.run.record import open_store
from tests.ports import free_port

pytestmark = pytest.mark.usefixtures("prefect_harness")

START = date(2026, 7, 1)
# Weekly uptime (%) of a KR that must stay at or above 95, scoring 0 at 90. With the
# aspirational success level 0.7, 93.5 and above is at risk, below it off track.
UPTIME = [97, 96, 92, 91, 90, 91, 96, 94, 97, 92, 97, 97]
EXPECTED_STATUS = [
    "on_track",
    "on_track",
    "off_track",
    "off_track",
    "off_track",
    "off_track",
    "on_track",
    "at_risk",
    "on_track",
    "off_track",
    "on_track",
    "on_track",
]
# pending 2 evaluations, repeat every 14 days, resolved only once on track:
# week 3 pending, week 4 fires, week 6 repeats (14 days on), week 7 resolves; week 10's
# single off-track week only goes pending, and clears silently in week 11.
EXPECTED_ALERTS = {4: "firing", 6: "repeat", 7: "resolved"}

OKRS = f"""\
cycle: {{name: 2026-Q3, start: {START}, end: 2026-09-30}}
objectives:
  - id: reliability
    title: A service listeners can count on
    owner: sre@example.com
    key_results:
      - id: uptime
        title: Keep uptime at or above 95%
        unit: "%"
        kind: at_least
        target: 95
        floor: 90
        schedule: "0 9 * * 1"
        source:
          type: sql
          connection: warehouse
          query: >
            SELECT value FROM uptime WHERE day <= date(:as_of) ORDER BY day DESC LIMIT 1
"""


class Receiver:
    """A local webhook receiver: what Apprise's json:// channel posts lands here."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                outer.posts.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def quarter(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("OKR_STORE_URL", "OKR_PROJECT_DIR"):
        monkeypatch.delenv(name, raising=False)
    with sqlite3.connect(tmp_path / "wh.db") as db:
        db.execute("CREATE TABLE uptime (day TEXT, value REAL)")
        db.executemany(
            "INSERT INTO uptime VALUES (?, ?)",
            [
                ((START + timedelta(days=7 * (w + 1) - 1)).isoformat(), v)
                for w, v in enumerate(UPTIME)
            ],
        )
    db.close()
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "q3.yaml").write_text(OKRS)
    (tmp_path / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path}/wh.db\n")
    (tmp_path / "alerts.yaml").write_text(
        "defaults: {pending_evaluations: 2, repeat_interval: 14d}\n"
        "default_route:\n"
        f"  channels: ['json://127.0.0.1:{receiver.port}/hook']\n"
    )
    return tmp_path


def test_a_quarter_of_weekly_runs(quarter: Path, receiver: Receiver) -> None:
    statuses, sent_by_week = [], {}
    for week in range(1, len(UPTIME) + 1):
        as_of = datetime(START.year, START.month, START.day, 9, tzinfo=UTC) + timedelta(
            days=7 * week
        )
        before = len(receiver.posts)
        summary = update_key_results(project_dir=str(quarter), all_krs=True, as_of=as_of)
        assert summary.errors == 0, summary.failed
        statuses.append(summary.rows[0]["status"])
        for post in receiver.posts[before:]:
            sent_by_week[week] = post
    assert statuses == EXPECTED_STATUS
    assert {w: _transition(p) for w, p in sent_by_week.items()} == EXPECTED_ALERTS
    firing = sent_by_week[4]["message"]
    assert "reliability/uptime" in firing and "91" in firing and "95" in firing
    store = open_store(load_settings(quarter))
    try:
        recorded = [(a.kind, a.transition, a.delivery) for a in reversed(store.recent_alerts())]
    finally:
        store.close()
    assert recorded == [
        ("off_track", "firing", "sent"),
        ("off_track", "repeat", "sent"),
        ("off_track", "resolved", "sent"),
    ]


def _transition(post: dict[str, Any]) -> str:
    text = (post.get("title", "") + " " + post.get("message", "")).lower()
    if "resolved" in text:
        return "resolved"
    if "still" in text or "repeat" in text:
        return "repeat"
    return "firing"


def test_a_silence_records_the_repeat_but_does_not_send_it(
    quarter: Path, receiver: Receiver
) -> None:
    monday = datetime(START.year, START.month, START.day, 9, tzinfo=UTC)
    for week in range(1, len(UPTIME) + 1):
        as_of = monday + timedelta(days=7 * week)
        if week == 5:
            store = open_store(load_settings(quarter))
            try:  # silence the objective over week 6, when the repeat falls due
                store.add_silence("reliability", as_of + timedelta(days=8), "maintenance", as_of)
            finally:
                store.close()
        update_key_results(project_dir=str(quarter), all_krs=True, as_of=as_of)
    assert [_transition(p) for p in receiver.posts] == ["firing", "resolved"]
    store = open_store(load_settings(quarter))
    try:
        recorded = [(a.transition, a.delivery) for a in reversed(store.recent_alerts())]
    finally:
        store.close()
    assert recorded == [("firing", "sent"), ("repeat", "silenced"), ("resolved", "sent")]
