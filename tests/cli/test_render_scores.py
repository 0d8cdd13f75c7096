"""Objective scores in ``okr status``: a failing or stale KR keeps counting, marked.

Pure: status rows are built here as the store returns them; the clock is fixed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

from okr_pipeline.cli.render import judged, objective_score_map, print_rows, status_json
from okr_pipeline.okr_store.records import StatusRow

D = Decimal
NOW = datetime(2026, 11, 16, 9, tzinfo=UTC)
AS_OF = NOW - timedelta(hours=1)


def row(kr_key: str, value: str | None, score: float | None, **fields: Any) -> StatusRow:
    """A daily increase KR from 100 to 200, evaluated an hour ago."""
    values: dict[str, Any] = {
        "kr_id": hash(kr_key) % 10_000,
        "cycle": "2026-Q4",
        "objective_key": "grow",
        "objective_title": "Grow",
        "owner": "maya@example.com",
        "objective_type": "aspirational",
        "parent_key": None,
        "kr_key": kr_key,
        "kr_title": f"KR {kr_key}",
        "unit": "",
        "kind": "increase",
        "weight": D(1),
        "schedule": "0 6 * * *",
        "baseline": D(100),
        "target": "+100%",
        "target_value": D(200),
        "value": None if value is None else D(value),
        "progress": score,
        "score": score,
        "expected_progress": 0.5,
        "forecast_value": None,
        "forecast_score": None,
        "status": "on_track" if score is not None else None,
        "reason": "",
        "evaluated_at": AS_OF,
        "measured_at": AS_OF + timedelta(minutes=3),
        "outcome": "ok",
        "error_message": None,
        "last_good_value": None if value is None else D(value),
        "last_good_at": AS_OF + timedelta(minutes=3),
        "last_good_as_of": AS_OF,
    }
    values.update(fields)
    return StatusRow(**values)


def failing(good: str, **fields: Any) -> StatusRow:
    """A KR whose source failed in the latest run; its last good value is ``good``."""
    base = row("a", good, None, status="error", outcome="error", error_message="HTTP 503")
    return replace(base, value=None, progress=None, **fields)


ROWS = [row("a", "136", 0.36), row("b", "166", 0.66), row("c", "166", 0.66)]


def test_a_failing_kr_counts_with_its_last_good_score() -> None:
    assert objective_score_map(ROWS)["grow"].score == pytest.approx(0.56)
    down = [failing("136"), *ROWS[1:]]
    result = objective_score_map(down)["grow"]
    assert result.score == pytest.approx(0.56)  # not 0.66: the KR did not drop out
    assert result.carried == ("a",) and not result.partial


def test_a_stale_kr_counts_marked_stale_and_a_new_one_makes_it_partial() -> None:
    old = AS_OF - timedelta(days=9)
    stale = failing("136", last_good_as_of=old, last_good_at=old)
    never = row("d", None, None, outcome=None, measured_at=None, last_good_at=None,
                last_good_as_of=None, evaluated_at=None)  # fmt: skip
    rows = judged([stale, *ROWS[1:], never], NOW, 3.0)
    assert rows[0].status == "stale"
    result = objective_score_map(rows)["grow"]
    assert result.score == pytest.approx(0.56)
    assert (result.carried, result.stale, result.unscored) == ((), ("a",), ("d",))
    assert result.partial


def test_at_least_last_good_score_uses_the_floor() -> None:
    level = failing("97", kind="at_least", baseline=None, target="99", target_value=D(99),
                    floor=D(95))  # fmt: skip
    result = objective_score_map([level])["grow"]
    assert result.score == pytest.approx(0.5) and result.carried == ("a",)


def test_status_table_says_what_the_objective_score_is_made_of() -> None:
    console = Console(width=160, record=True, color_system=None)
    print_rows(console, [failing("136"), *ROWS[1:]])
    text = console.export_text()
    assert "score 0.56 (last good score of a)" in text
    assert "0.36*" in text and "* last good score" in text


def test_status_json_has_as_of_baseline_target_and_objective_scores() -> None:
    items = {item["id"]: item for item in json.loads(status_json([failing("136"), *ROWS[1:]]))}
    a = items["a"]
    assert a["as_of"] == AS_OF.isoformat()
    assert a["measured_at"] == (AS_OF + timedelta(minutes=3)).isoformat()
    assert (a["baseline"], a["target"], a["target_as_written"]) == ("100", "200", "+100%")
    assert (a["score"], a["counted_score"], a["score_basis"]) == (None, 0.36, "carried")
    assert a["last_good_value"] == "136"
    assert a["objective_score"] == {
        "score": pytest.approx(0.56),
        "partial": False,
        "carried": ["a"],
        "stale": [],
        "unscored": [],
        "partial_children": [],
        "marked_children": [],
    }
    assert items["b"]["score_basis"] == "current" and items["b"]["counted_score"] == 0.66
