"""``--json`` on every listing: runs, alerts, silences, connectors, explain and history.

Each command runs for real on a project with a known history; its output must parse, keep
the documented keys (the README's "Commands" section) and give stored values as exact
decimal strings, times as ISO 8601 with their offset, and null (never 0) where there is none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.cli.listing_project import (
    AUTHOR,
    CHECKINS,
    NOTE,
    VALUES,
    WEEKS,
    ListingProject,
    build,
)

RUN_KEYS = {"id", "as_of", "started_at", "finished_at", "status", "trigger", "total", "ok",
            "no_data", "error", "flow_run_id"}  # fmt: skip
ALERT_KEYS = {"id", "created_at", "run_id", "kr", "kind", "transition", "route", "channel",
              "delivery", "error", "payload"}  # fmt: skip
SILENCE_KEYS = {"id", "target", "until", "reason", "created_at", "active"}
CONNECTOR_KEYS = {"type", "reads", "authentication", "tested_against", "package", "class"}
MEASUREMENT_KEYS = {"as_of", "measured_at", "outcome", "value", "error", "kind", "author",
                    "note", "run_id"}  # fmt: skip
STUCK = "growth/paying-listeners-from-the-spring-campaign"


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ListingProject]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield build(tmp_path_factory.mktemp("json"), monkeypatch)


def as_json(listing: ListingProject, *args: str) -> Any:
    result = listing.okr(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def is_time(text: str) -> bool:
    return datetime.fromisoformat(text).utcoffset() is not None


def test_runs(listing: ListingProject) -> None:
    runs = as_json(listing, "runs")
    assert len(runs) == len(WEEKS) + len(CHECKINS)
    assert all(set(run) == RUN_KEYS for run in runs)
    assert [run["id"] for run in runs] == sorted((run["id"] for run in runs), reverse=True)
    oldest = runs[-1]
    assert datetime.fromisoformat(oldest["as_of"]) == WEEKS[0]
    # signups and the stuck KR measured; the manual KR, with no check-in yet, no data.
    assert (oldest["total"], oldest["ok"], oldest["no_data"], oldest["error"]) == (3, 2, 1, 0)
    assert all(is_time(run["started_at"]) for run in runs)
    assert [run["trigger"] for run in runs] == ["checkin"] * len(CHECKINS) + ["run"] * len(WEEKS)


def test_alerts(listing: ListingProject) -> None:
    alerts = as_json(listing, "alerts")
    assert alerts and all(set(alert) == ALERT_KEYS for alert in alerts)
    fired = alerts[0]
    assert (fired["kr"], fired["kind"], fired["transition"]) == (STUCK, "off_track", "firing")
    assert fired["channel"] is None  # nothing was sent: no routing file
    assert fired["payload"]["value"] == "1" and fired["payload"]["target"] == "100"
    assert is_time(fired["created_at"])
    assert as_json(listing, "alerts", "--kr", "growth/signups") == []


def test_silences(listing: ListingProject) -> None:
    assert as_json(listing, "silences") == []
    added = listing.okr("silence", STUCK, "--until", "3d", "--reason", "campaign paused")
    assert added.returncode == 0, added.stderr
    silences = as_json(listing, "silences")
    assert len(silences) == 1 and set(silences[0]) == SILENCE_KEYS
    silence = silences[0]
    assert (silence["target"], silence["reason"], silence["active"]) == (
        STUCK,
        "campaign paused",
        True,
    )
    assert datetime.fromisoformat(silence["until"]) > datetime.fromisoformat(silence["created_at"])


def test_connectors() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "okr_pipeline", "connectors", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    connectors = {item["type"]: item for item in json.loads(result.stdout)}
    assert {"sql", "http", "manual", "formula"} <= set(connectors)
    assert all(set(item) == CONNECTOR_KEYS for item in connectors.values())
    assert connectors["sql"]["package"].startswith("okr-pipeline ")


def test_explain(listing: ListingProject) -> None:
    data = as_json(listing, "explain", "signups")
    assert set(data) == {"kr", "status", "history", "alert_states", "silences", "alerts"}
    kr = data["kr"]
    assert (kr["ref"], kr["baseline"], kr["target"], kr["unit"]) == (
        "growth/signups",
        "10",
        "50",
        "signups",
    )
    assert kr["source_type"] == "sql" and kr["connection"] == "warehouse"
    assert "query" not in kr  # the source's settings are not shown
    assert data["status"]["value"] == "31.25" and isinstance(data["status"]["score"], float)
    history = data["history"]
    assert all(set(item) == MEASUREMENT_KEYS for item in history)
    newest_first = [item["value"] for item in history]
    assert newest_first == [None if v is None else str(v) for v in reversed(VALUES)]
    assert history[1]["outcome"] == "error" and history[1]["error"]
    stuck = as_json(listing, "explain", STUCK)
    assert [state["kind"] for state in stuck["alert_states"]] == ["off_track"]
    assert stuck["alerts"][0]["transition"] == "firing"


def test_history(listing: ListingProject) -> None:
    data = as_json(listing, "history", "growth/signups")
    assert set(data) == {"kr", "title", "unit", "total", "measurements", "notes"}
    assert data["notes"] == [
        {"as_of": NOTE[0].isoformat(), "created_at": data["notes"][0]["created_at"],
         "author": AUTHOR, "text": NOTE[1]}
    ]  # fmt: skip
    assert (data["kr"], data["total"]) == ("growth/signups", len(WEEKS))
    items = data["measurements"]
    assert all(set(item) == MEASUREMENT_KEYS for item in items)
    assert [datetime.fromisoformat(item["as_of"]) for item in items] == WEEKS  # oldest first
    assert [item["value"] for item in items] == [None if v is None else str(v) for v in VALUES]
    assert [item["outcome"] for item in items] == ["ok", "ok", "error", "ok"]
    last_two = as_json(listing, "history", "signups", "--limit", "2")
    assert last_two["total"] == 4 and last_two["measurements"] == items[-2:]
    meetups = as_json(listing, "history", "meetups")["measurements"]
    assert [(m["kind"], m["author"], m["note"], m["value"]) for m in meetups] == [
        ("checkin", AUTHOR, note, value) for _, value, note in CHECKINS
    ]
