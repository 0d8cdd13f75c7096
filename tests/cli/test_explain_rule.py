"""``okr explain`` says which rule decided a KR's status and what its forecast means.

A level KR (``at_least``/``at_most``) is judged on today's value against its level; its
forecast is shown as a warning, not as what decided. An increasing KR with a trend is
judged on the forecast's score against the success level.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from okr_pipeline.cli.explain import deciding_rule, explain_kr, forecast_role
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.run.checkin import record_checkin

NOW = datetime.now(UTC).replace(microsecond=0)
START = (NOW - timedelta(days=40)).date()
END = (NOW + timedelta(days=50)).date()

OKRS = f"""\
cycle: {{name: Q, start: {START}, end: {END}}}
objectives:
  - id: reliable
    title: A service people can count on
    owner: sre@example.com
    type: committed
    key_results:
      - id: uptime
        title: Keep the API up 95% of the time
        kind: at_least
        baseline: 99
        target: 95
        floor: 90
        unit: "%"
        schedule: "0 9 * * 1"
        source: {{type: manual}}
      - id: signups
        title: Signups from 100 to 200
        baseline: 100
        target: 200
        schedule: "0 9 * * 1"
        source: {{type: manual}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "q.yaml").write_text(OKRS)
    settings = load_settings(tmp_path)
    # Uptime falls week after week but still holds 95 % today; signups crawl.
    for weeks_ago, uptime, signups in ((4, "99.5", "105"), (3, "98.5", "110"), (2, "97.5", "114")):
        when = NOW - timedelta(weeks=weeks_ago)
        record_checkin(settings, "uptime", uptime, author="t", as_of=when, now=NOW)
        record_checkin(settings, "signups", signups, author="t", as_of=when, now=NOW)
    when = NOW - timedelta(days=1)
    record_checkin(settings, "uptime", "96.5", author="t", as_of=when, now=NOW)
    record_checkin(settings, "signups", "118", author="t", as_of=when, now=NOW)
    return tmp_path


def explained(project: Path, name: str) -> str:
    out = io.StringIO()
    explain_kr(load_settings(project), name, Console(file=out, width=200))
    return " ".join(out.getvalue().split())


def test_a_level_kr_is_decided_by_its_level_not_its_forecast(project: Path) -> None:
    text = explained(project, "uptime")
    assert "Status on_track: holding the level" in text
    assert "Decided by: the level: today's value is at or above 95 %" in text
    assert "the forecast does not decide" in text
    # The falling trend ends under the level: shown, with what it means.
    assert "which would score" in text
    assert "shown, not used: a level KR is judged on today's value" in text
    assert "the trend leads out of the level" in text


def test_an_increasing_kr_is_decided_by_its_forecast(project: Path) -> None:
    text = explained(project, "signups")
    assert "Decided by: the forecast: its score at cycle end against the success level 1" in text
    assert "this decided the status (vs success level 1)" in text


@pytest.mark.parametrize(
    ("kind", "reason", "rule"),
    [
        ("at_most", "holding the level", "at or below 2 h"),
        ("at_least", "level broken: score 0.80 vs 1.00", "today's value broke 2 h"),
        ("increase", "pace only (2 points): progress 0.10 vs pace 0.20", "pace only"),
        ("increase", "at target: progress 1.10", "the target: reached"),
        ("decrease", "cycle over: final score 0.50 vs 0.70", "the final score"),
        ("milestone", "not done", "the milestone"),
        ("increase", "source failed: HTTP 404 Not Found from x/y", "no value to judge"),
        ("increase", "no good value for 3d: 3 scheduled refreshes missed", "staleness"),
    ],
)
def test_every_reason_names_its_rule(kind: str, reason: str, rule: str) -> None:
    assert rule in deciding_rule(kind, reason, 0.7, "2 h")


def test_forecast_role_when_the_target_is_reached() -> None:
    assert forecast_role("increase", "at target: progress 1.10", 1.0, 0.7) == (
        "shown, not used for this status"
    )
    assert "trend leads out" not in forecast_role("at_least", "holding the level", 1.0, 1.0)
