"""Scoring math: examples by kind, forecast, status rules and objective roll-up."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from okr_pipeline.okr_core.scoring import (
    PROGRESS_LIMIT,
    KrSpec,
    ObjectiveScoreInput,
    Status,
    evaluate,
    expected_progress,
    forecast,
    objective_scores,
    progress,
    score,
)

D = Decimal
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
UP = KrSpec(kind="increase", baseline=D(100), target=D(120))
DOWN = KrSpec(kind="decrease", baseline=D("5.5"), target=D(2))


def test_progress_both_directions() -> None:
    assert progress(D(110), D(100), D(120)) == 0.5
    assert progress(D("3.75"), D("5.5"), D(2)) == 0.5
    assert progress(D(90), D(100), D(120)) == -0.5  # raw: below 0 is kept
    assert progress(D(130), D(100), D(120)) == 1.5
    with pytest.raises(ValueError):
        progress(D(1), D(2), D(2))


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (UP, D(110), 0.5),
        (UP, D(90), 0.0),
        (UP, D(130), 1.0),
        (DOWN, D(2), 1.0),
        (DOWN, D(7), 0.0),
        (KrSpec("at_least", None, D(95)), D(97), 1.0),
        (KrSpec("at_least", None, D(95), floor=D(90)), D("92.5"), 0.5),
        (KrSpec("at_least", None, D(95), floor=D(90)), D(80), 0.0),
        (KrSpec("at_least", None, D(10)), D(5), 0.5),  # default floor 0
        (KrSpec("at_most", None, D(2)), D(2), 1.0),
        (KrSpec("at_most", None, D(2)), D("2.1"), 0.0),  # no floor: no slope
        (KrSpec("at_most", None, D(2), floor=D(4)), D(3), 0.5),
        (KrSpec("milestone", None, D(1)), D(1), 1.0),
        (KrSpec("milestone", None, D(1)), D(0), 0.0),
    ],
)
def test_score_table(spec: KrSpec, value: Decimal, expected: float) -> None:
    assert score(spec, value) == pytest.approx(expected)


def test_expected_progress() -> None:
    assert expected_progress(START, END, START - DAY) == 0.0
    assert expected_progress(START, END, END + DAY) == 1.0
    mid = START + (END - START) / 2
    assert expected_progress(START, END, mid) == pytest.approx(0.5)


def _line(
    n: int, per_day: float, days: int = 30, noise: bool = False
) -> list[tuple[datetime, Decimal]]:
    step = days / max(n - 1, 1)
    points = []
    for i in range(n):
        value = 100 + per_day * step * i + ((-1) ** i * 0.5 if noise else 0)
        points.append((START + timedelta(days=step * i), D(repr(value))))
    return points


def test_forecast_on_a_line() -> None:
    result = forecast(_line(10, per_day=1.0), START, END)
    assert result is not None
    assert result.value == pytest.approx(192.0)  # 100 + 92 days * 1/day
    assert result.slope_per_day == pytest.approx(1.0)
    assert result.low <= result.value <= result.high
    assert result.points == 10


def test_forecast_is_robust_to_an_outlier() -> None:
    points = _line(11, per_day=1.0)
    points[5] = (points[5][0], D(10_000))
    result = forecast(points, START, END)
    assert result is not None and result.value == pytest.approx(192.0, rel=0.05)


def test_forecast_needs_points_and_span() -> None:
    assert forecast(_line(2, per_day=1.0), START, END) is None
    assert forecast(_line(5, per_day=1.0, days=5), START, END) is None  # < 10% of the cycle
    assert forecast(_line(5, per_day=1.0, days=10), START, END) is not None


def test_forecast_of_many_points_is_deterministic() -> None:
    # Past MAX_PAIRS pairs are sampled; the same history must give the same forecast.
    points = _line(3000, per_day=0.5, days=60, noise=True)
    first = forecast(points, START, END)
    assert first == forecast(list(reversed(points)), START, END)
    assert first is not None and first.value == pytest.approx(146.0, abs=1.0)


def _eval(spec: KrSpec, value: Decimal | None, at: datetime, history=(), level: float = 0.7):
    return evaluate(
        spec,
        value,
        history=list(history),
        at=at,
        cycle_start=START,
        cycle_end=END,
        success_level=level,
    )


def test_no_value_is_no_data_never_zero() -> None:
    result = _eval(UP, None, START + 10 * DAY)
    assert result.status is Status.NO_DATA
    assert result.score is None and result.progress is None and result.forecast_score is None


def test_pace_only_statuses() -> None:
    at = START + 46 * DAY  # pace 0.5, target pace 0.5 * 0.7 = 0.35
    assert _eval(UP, D(108), at).status is Status.ON_TRACK  # 0.40
    assert _eval(UP, D(105), at).status is Status.AT_RISK  # 0.25 >= 0.25
    assert _eval(UP, D(101), at).status is Status.OFF_TRACK  # 0.05
    assert _eval(UP, D(101), at).reason.startswith(
        "pace only (1 point): progress 0.05 vs pace 0.50"
    )


def test_forecast_statuses() -> None:
    at = START + 30 * DAY
    good = _line(10, per_day=0.25)  # 100 -> 123 by the end: score 1.0
    result = _eval(UP, good[-1][1], at, good)
    assert result.status is Status.ON_TRACK and result.forecast_score == pytest.approx(1.0)
    slow = _line(10, per_day=0.1)  # 100 -> 109.2: forecast score 0.46
    result = _eval(UP, slow[-1][1], at, slow)
    assert result.status is Status.OFF_TRACK
    assert result.reason.startswith("forecast 0.46 < 0.70; progress 0.15 vs pace 0.33")


def test_at_target_is_on_track_even_with_bad_trend() -> None:
    falling = [(START + i * 10 * DAY, D(200 - 10 * i)) for i in range(4)]
    assert _eval(UP, D(120), START + 40 * DAY, falling).status is Status.ON_TRACK


def test_cycle_over_uses_final_score() -> None:
    assert _eval(UP, D(115), END, level=0.7).status is Status.ON_TRACK
    assert _eval(UP, D(115), END, level=1.0).status is Status.OFF_TRACK


def test_levels_and_milestones() -> None:
    slo = KrSpec("at_least", None, D("99.9"), floor=D(99))
    at = START + 10 * DAY
    assert _eval(slo, D("99.95"), at).status is Status.ON_TRACK
    assert _eval(slo, D("99.7"), at).status is Status.AT_RISK
    assert _eval(slo, D("99.1"), at).status is Status.OFF_TRACK
    ms = KrSpec("milestone", None, D(1))
    assert _eval(ms, D(0), START + 30 * DAY).status is Status.ON_TRACK
    assert _eval(ms, D(0), START + 80 * DAY).status is Status.AT_RISK
    assert _eval(ms, D(0), END).status is Status.OFF_TRACK
    assert _eval(ms, D(1), END).status is Status.ON_TRACK


def test_objective_scores_roll_up() -> None:
    scores = objective_scores(
        {
            "company": ObjectiveScoreInput(kr_scores=[(0.5, D(1))]),
            "team-a": ObjectiveScoreInput(kr_scores=[(1.0, D(3)), (0.0, D(1))], parent="company"),
            "team-b": ObjectiveScoreInput(kr_scores=[(None, D(1))], parent="company"),
            "orphan": ObjectiveScoreInput(kr_scores=[(0.2, 1)], parent="gone"),
        }
    )
    assert scores["team-a"] == pytest.approx(0.75)
    assert scores["team-b"] is None  # nothing scored: not 0
    assert scores["company"] == pytest.approx((0.5 + 0.75) / 2)  # team-b left out
    assert scores["orphan"] == pytest.approx(0.2)


def test_objective_scores_cycle_raises() -> None:
    with pytest.raises(ValueError, match="cycle"):
        objective_scores(
            {
                "a": ObjectiveScoreInput(parent="b"),
                "b": ObjectiveScoreInput(parent="a"),
            }
        )


def test_status_values() -> None:
    assert [s.value for s in Status] == [
        "on_track",
        "at_risk",
        "off_track",
        "no_data",
        "error",
        "stale",
    ]


DOWN = KrSpec(kind="decrease", baseline=D("5.5"), target=D(2))  # hours, lower is better


def _falling(n: int, per_day: float, days: int = 30) -> list[tuple[datetime, Decimal]]:
    step = days / (n - 1)
    return [(START + i * step * DAY, D(str(round(5.5 - per_day * i * step, 4)))) for i in range(n)]


def test_decreasing_kr_forecast_and_status() -> None:
    at = START + 30 * DAY  # a third of the cycle
    # 0.04 h/day for 92 days: 5.5 -> 1.82, past the target: on track.
    good = _eval(DOWN, _falling(10, 0.04)[-1][1], at, _falling(10, 0.04))
    assert good.status is Status.ON_TRACK and good.forecast_score == pytest.approx(1.0)
    assert good.forecast_value is not None and good.forecast_value < 2
    # 0.015 h/day: ends near 4.12, score (5.5 - 4.12) / 3.5 = 0.39: off track.
    slow = _eval(DOWN, _falling(10, 0.015)[-1][1], at, _falling(10, 0.015))
    assert slow.status is Status.OFF_TRACK
    assert slow.forecast_score == pytest.approx(0.39, abs=0.02)
    assert slow.progress == pytest.approx((5.5 - 5.05) / 3.5, abs=0.01)
    # Getting worse (going up) is negative progress, never a good score.
    worse = _eval(DOWN, D(6), at)
    assert worse.progress is not None and worse.progress < 0 and worse.score == 0.0


def test_at_most_levels() -> None:
    latency = KrSpec("at_most", None, D(300), floor=D(600))  # ms; 0 at 600
    at = START + 10 * DAY
    assert _eval(latency, D(250), at).status is Status.ON_TRACK
    assert _eval(latency, D(360), at).status is Status.AT_RISK  # score 0.8 >= 0.7
    assert _eval(latency, D(500), at).status is Status.OFF_TRACK  # score 0.33
    assert _eval(latency, None, at).status is Status.NO_DATA


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        (UP, D(85)),  # increasing KR that fell from 100 to 85: progress -0.75
        (DOWN, D("8.125")),  # decreasing KR that rose from 5.5 h to 8.125 h: progress -0.75
    ],
)
def test_pace_only_negative_progress_is_off_track_not_at_risk(spec: KrSpec, value: D) -> None:
    at = START + 6 * DAY + 12 * timedelta(hours=1)  # pace ~0.071, threshold 0.7 * pace ~0.05
    result = _eval(spec, value, at)
    assert result.progress == pytest.approx(-0.75)
    assert result.score == 0.0
    assert result.status is Status.OFF_TRACK
    assert "progress -0.75" in result.reason


@pytest.mark.parametrize("spec", [UP, DOWN])
def test_pace_only_slightly_negative_progress_is_at_risk(spec: KrSpec) -> None:
    # Within the tolerance below the (small) pace threshold, a small step back is at_risk.
    at = START + 6 * DAY + 12 * timedelta(hours=1)
    assert spec.baseline is not None
    value = spec.baseline - (spec.target - spec.baseline) * D("0.02")
    result = _eval(spec, value, at)
    assert result.progress == pytest.approx(-0.02)
    assert result.status is Status.AT_RISK


@pytest.mark.parametrize("text", ["1e999999999", "-1e999999999", "1e-999999999", "9e+999999"])
@pytest.mark.parametrize("kind", ["increase", "decrease", "at_least", "at_most", "milestone"])
def test_extreme_values_are_scored_without_raising(text: str, kind: str) -> None:
    value = D(text)
    spec = KrSpec(kind=kind, baseline=D(100), target=D(120), floor=D(50))  # type: ignore[arg-type]
    history = [(START + i * 10 * DAY, value) for i in range(4)]
    result = _eval(spec, value, START + 40 * DAY, history=history)
    assert result.progress is not None and math.isfinite(result.progress)
    assert abs(result.progress) <= PROGRESS_LIMIT
    assert result.score is not None and 0.0 <= result.score <= 1.0
    assert result.status in (Status.ON_TRACK, Status.AT_RISK, Status.OFF_TRACK)


def test_progress_of_huge_and_tiny_values() -> None:
    assert progress(D("1e999999999"), D(0), D(1)) == PROGRESS_LIMIT
    assert progress(D("-1e999999999"), D(0), D(1)) == -PROGRESS_LIMIT
    # Baseline and target a hair apart at the far end of the exponent range: exact, not 0/0.
    assert progress(D("1.5e-999999999"), D("1e-999999999"), D("2e-999999999")) == 0.5
    assert progress(D("1e999999999"), D("1e999999999"), D("2e999999999")) == 0.0
    assert score(KrSpec("at_most", D(0), D("1e999999998"), floor=D("3e999999998")),
                 D("2e999999998")) == 0.5  # fmt: skip


def test_non_finite_values_raise_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="value NaN is not a finite number"):
        score(UP, D("NaN"))
    with pytest.raises(ValueError, match="value Infinity is not a finite number"):
        progress(D("Infinity"), D(0), D(1))


def test_forecast_of_values_beyond_float_range_is_none() -> None:
    points = [(START + i * 10 * DAY, D(f"{i + 1}e999999999")) for i in range(5)]
    assert forecast(points, START, END) is None
