"""Stale: no good value for longer than the KR's own schedule allows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from okr_pipeline.cli.render import judged
from okr_pipeline.okr_store.records import StatusRow
from okr_pipeline.run.evaluate import evaluate_results
from okr_pipeline.run.fetch import FetchResult
from okr_pipeline.run.staleness import stale_reason
from tests.run.test_select import kr

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "stale"),
    [
        (timedelta(hours=2), False),  # 09:00 and 10:00 missed
        (timedelta(hours=2, minutes=30), False),
        (timedelta(hours=3), True),  # 08:00, 09:00 and 10:00 missed
    ],
)
def test_stale_after_three_periods(age: timedelta, stale: bool) -> None:
    reason = stale_reason(NOW - age, NOW, "0 * * * *", 3)
    assert (reason is not None) is stale
    if reason:
        assert "3 scheduled refreshes missed ('0 * * * *' allows 3)" in reason


@pytest.mark.parametrize(
    ("now", "stale"),
    [
        # A good value on Friday 09:00, a failed run on Monday 09:00: one refresh missed.
        (datetime(2026, 11, 23, 9, tzinfo=UTC), False),
        (datetime(2026, 11, 25, 9, tzinfo=UTC), False),  # Mon, Tue missed; Wed being judged
        (datetime(2026, 11, 25, 9, 1, tzinfo=UTC), True),  # Mon, Tue, Wed missed
    ],
)
def test_stale_counts_the_fires_of_an_irregular_schedule(now: datetime, stale: bool) -> None:
    friday = datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert (stale_reason(friday, now, "0 9 * * 1-5", 3) is not None) is stale


def test_never_measured_is_not_stale() -> None:
    assert stale_reason(None, NOW, "0 * * * *", 3) is None


def test_failing_source_turns_stale_once_the_last_good_value_is_too_old() -> None:
    fresh, old, never = kr("o", "fresh", 1), kr("o", "old", 2), kr("o", "never", 3)
    results = [
        FetchResult(1, NOW, error="timed out", error_kind="retriable"),
        FetchResult(2, NOW, error="timed out", error_kind="retriable"),
        FetchResult(3, NOW, error="timed out", error_kind="retriable"),
    ]
    last_good = {1: NOW - timedelta(hours=1), 2: NOW - timedelta(hours=5)}
    evaluations = evaluate_results(
        {k.kr_id: k for k in (fresh, old, never)}, results, {}, as_of=NOW, last_good=last_good
    )
    assert [e.status for e in evaluations] == ["error", "stale", "error"]
    assert "source failed" in evaluations[1].reason
    assert all(e.value is None and e.score is None for e in evaluations)  # never 0


def test_a_good_value_is_never_stale() -> None:
    old = kr("o", "old", 2)
    evaluations = evaluate_results(
        {2: old},
        [FetchResult(2, NOW, value=Decimal(5))],
        {},
        as_of=NOW,
        last_good={2: NOW - timedelta(days=5)},
    )
    assert evaluations[0].status != "stale"


def _row(**changes: object) -> StatusRow:
    base = StatusRow(
        kr_id=1,
        cycle="c",
        objective_key="o",
        objective_title="O",
        owner="x",
        objective_type="aspirational",
        parent_key=None,
        kr_key="k",
        kr_title="K",
        unit="",
        kind="increase",
        weight=Decimal(1),
        schedule="0 * * * *",
        baseline=Decimal(0),
        target="10",
        target_value=Decimal(10),
        value=Decimal(5),
        progress=0.5,
        score=0.5,
        expected_progress=0.5,
        forecast_value=None,
        forecast_score=None,
        status="on_track",
        reason="",
        evaluated_at=NOW,
        measured_at=NOW,
        outcome="ok",
        error_message=None,
        last_good_value=Decimal(5),
        last_good_at=NOW,
        last_good_as_of=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_status_shows_stale_when_runs_stopped() -> None:
    rows = [
        _row(),
        _row(kr_id=2, last_good_as_of=NOW - timedelta(hours=4)),
        _row(kr_id=3, status=None, last_good_as_of=None),
    ]
    shown = judged(rows, NOW, 3)
    assert [r.status for r in shown] == ["on_track", "stale", None]
    assert "no good value for 4h: 3 scheduled refreshes missed" in shown[1].reason
