"""Pure scoring math: progress, score, pace and status of a KR.

Nothing here does I/O or imports anything heavy, so it is tested in microseconds.
Values are ``Decimal`` (or ``None`` for "no value"); progress and scores are ``float``.

Score by kind:
    * ``increase``/``decrease``: progress clamped to [0, 1], where
      progress = (value - baseline) / (target - baseline).
    * ``at_least``: 1.0 while value >= target; below, linear from 1 at the target to 0 at
      ``floor`` (default floor 0, as PRODUCT.md says "toward a declared floor (or 0)").
    * ``at_most``: 1.0 while value <= target; above, linear from 1 at the target to 0 at
      ``floor`` (which lies above the target). Without a floor there is no slope, so the
      score is 0 as soon as the level is broken.
    * ``milestone``: 1 if value >= 1 (done) else 0.

Status (:func:`evaluate`), with ``sl`` the objective's success level and ``tolerance`` 0.1:
    * no value -> ``no_data``; scores stay ``None``, never 0.
    * score 1.0 (at or past the target, holding the level, milestone done) -> ``on_track``.
    * ``increase``/``decrease``:
        - cycle over: final score >= sl -> on_track, >= sl - tolerance -> at_risk, else
          off_track;
        - with a forecast (>= 3 points spanning >= 10% of the cycle): the forecast score
          is compared the same way;
        - otherwise pace only: *raw* progress >= pace * sl -> on_track,
          >= pace * sl - tolerance -> at_risk, else off_track. Raw, not clamped: a KR that
          moved the wrong way (progress -0.75) early in the cycle is off_track, where the
          clamped 0 would pass as merely at_risk against a small pace.
    * ``at_least``/``at_most``: holding the level -> on_track; level broken but score
      >= sl -> at_risk; else off_track.
    * ``milestone``: not done -> on_track during the first 75% of the cycle, at_risk in
      the last 25%, off_track once the cycle is over.

Extreme values: every value operation runs in a context with the widest exponent range and
no traps, so any finite ``Decimal`` (``1e999999999``, ``1e-999999999``) is scored without
raising. Raw progress is bounded to +/-``PROGRESS_LIMIT`` (a value a billion times further
than the planned distance says nothing more than "far past it"), so it is always a finite
float that a store column and JSON hold. Values that are not finite (NaN, infinity) raise
``ValueError``.

The trend behind a forecast: :mod:`okr_core.forecast` (``forecast`` and ``Forecast`` are
re-exported here). Objective roll-up: :mod:`okr_core.rollup` (``objective_scores`` is
re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from enum import StrEnum
from typing import Literal

from okr_pipeline.okr_core.forecast import Forecast, forecast
from okr_pipeline.okr_core.rollup import ObjectiveScoreInput, objective_scores
from okr_pipeline.okr_core.words import plural

__all__ = [
    "Evaluation",
    "Forecast",
    "KrSpec",
    "ObjectiveScoreInput",
    "Status",
    "evaluate",
    "expected_progress",
    "forecast",
    "objective_scores",
    "progress",
    "score",
]

Kind = Literal["increase", "decrease", "at_least", "at_most", "milestone"]

# A not-done milestone becomes at_risk once this share of the cycle has passed.
MILESTONE_RISK_PACE = 0.75
# Raw progress is bounded to this (either sign) so it is always a finite float.
PROGRESS_LIMIT = 1e9
# The widest exponents and no traps: (value - baseline) / (target - baseline) of any finite
# decimals neither overflows (1e999999999 under the default context raises Overflow) nor
# underflows the difference of two tiny values to 0.
_WIDE = Context(prec=28, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])


class Status(StrEnum):
    """Where a KR stands. The last three are about the data, not the metric."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    NO_DATA = "no_data"
    ERROR = "error"
    STALE = "stale"


@dataclass(frozen=True)
class KrSpec:
    """What scoring needs to know about a KR, with the target already absolute."""

    kind: Kind
    baseline: Decimal | None
    target: Decimal
    floor: Decimal | None = None
    weight: Decimal = Decimal(1)


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating one KR value at one moment."""

    progress: float | None
    score: float | None
    expected_progress: float
    forecast_value: float | None
    forecast_score: float | None
    status: Status
    reason: str
    forecast_low: float | None = None  # the band of uncertainty around forecast_value
    forecast_high: float | None = None


def _clamp(x: float, low: float = 0.0, high: float = 1.0) -> float:
    return min(high, max(low, x))


def _finite(value: Decimal, what: str) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"{what} {value} is not a finite number; it cannot be scored")
    return value


def _ratio(a: Decimal, b: Decimal, c: Decimal, d: Decimal) -> float:
    """``(a - b) / (c - d)`` as a float bounded to +/-PROGRESS_LIMIT; ``c != d``."""
    quotient = _WIDE.divide(_WIDE.subtract(a, b), _WIDE.subtract(c, d))
    if quotient.is_nan():
        # Only when both differences overflow the widest exponent: nothing to tell apart.
        return 0.0
    return _clamp(float(quotient), -PROGRESS_LIMIT, PROGRESS_LIMIT)


def progress(value: Decimal, baseline: Decimal, target: Decimal) -> float:
    """Raw progress (value - baseline) / (target - baseline); may be < 0 or > 1.

    One formula for increasing and decreasing KRs: going from 5.5 h down to 2 h, a value of
    3.75 h is progress 0.5.

    Args:
        value: The current value.
        baseline: Where the KR started.
        target: Where it should end.

    Returns:
        The raw progress, bounded to +/-``PROGRESS_LIMIT`` (always finite).

    Raises:
        ValueError: ``target`` equals ``baseline``, or a number is not finite.
    """
    _finite(value, "value")
    _finite(baseline, "baseline")
    _finite(target, "target")
    if target == baseline:
        raise ValueError(f"target equals baseline ({target}); progress is undefined")
    return _ratio(value, baseline, target, baseline)


def score(spec: KrSpec, value: Decimal) -> float:
    """The KR score in [0, 1] for a value (rules per kind in the module docstring).

    Args:
        spec: The KR's scoring spec.
        value: The current value.

    Returns:
        The score, always within [0, 1].

    Raises:
        ValueError: ``value`` (or a number of the spec) is not finite.
    """
    _finite(value, "value")
    kind = spec.kind
    if kind == "milestone":
        return 1.0 if value >= 1 else 0.0
    if kind in ("increase", "decrease"):
        if spec.baseline is None or spec.baseline == spec.target:
            # Direction cannot be told: count only reaching the target.
            reached = value >= spec.target if kind == "increase" else value <= spec.target
            return 1.0 if reached else 0.0
        return _clamp(progress(value, spec.baseline, spec.target))
    if kind == "at_least":
        if value >= spec.target:
            return 1.0
        floor = spec.floor if spec.floor is not None else Decimal(0)
        if floor >= spec.target:
            return 0.0
        return _clamp(_ratio(value, floor, spec.target, floor))
    # at_most
    if value <= spec.target:
        return 1.0
    if spec.floor is None or spec.floor <= spec.target:
        return 0.0
    return _clamp(_ratio(spec.floor, value, spec.floor, spec.target))


def expected_progress(start: datetime, end: datetime, at: datetime) -> float:
    """Linear pace: the share of the cycle elapsed at ``at``, clamped to [0, 1].

    Args:
        start: Start of the cycle.
        end: End of the cycle (exclusive).
        at: The moment of evaluation.

    Returns:
        0.0 before the start, 1.0 from the end on.
    """
    total = (end - start).total_seconds()
    if total <= 0:
        return 1.0 if at >= end else 0.0
    return _clamp((at - start).total_seconds() / total)


def _grade(value: float, level: float, tolerance: float) -> Status:
    if value >= level:
        return Status.ON_TRACK
    if value >= level - tolerance:
        return Status.AT_RISK
    return Status.OFF_TRACK


def evaluate(
    spec: KrSpec,
    value: Decimal | None,
    *,
    history: Sequence[tuple[datetime, Decimal]],
    at: datetime,
    cycle_start: datetime,
    cycle_end: datetime,
    success_level: float,
    tolerance: float = 0.1,
) -> Evaluation:
    """Score a KR value and decide its status (rules in the module docstring).

    Args:
        spec: The KR's scoring spec.
        value: The current value, or None when the source had no value.
        history: Earlier ``(time, value)`` points in this cycle; ``(at, value)`` is added
            for the forecast unless already the last point.
        at: The moment of evaluation (aware, like the cycle bounds).
        cycle_start: Start of the cycle.
        cycle_end: End of the cycle.
        success_level: The objective's success level (0.7 aspirational, 1.0 committed).
        tolerance: How far below the success level still counts as at_risk.

    Returns:
        The evaluation.

    Raises:
        ValueError: ``value`` is not finite (NaN, infinity). Any finite value is scored.
    """
    pace = expected_progress(cycle_start, cycle_end, at)
    if value is None:
        return Evaluation(None, None, pace, None, None, Status.NO_DATA, "no value")

    current = score(spec, value)
    if spec.kind == "milestone":
        return _evaluate_milestone(current, pace, at, cycle_end)

    raw = _raw_progress(spec, value, current)
    points = list(history)
    if not points or points[-1][0] < at:
        points.append((at, value))
    trend = forecast(points, cycle_start, cycle_end)
    f_value = f_score = None
    if trend is not None:
        f_value = trend.value
        f_score = score(spec, Decimal(repr(trend.value)))

    band = (trend.low, trend.high) if trend is not None else (None, None)

    def done(status: Status, reason: str) -> Evaluation:
        return Evaluation(raw, current, pace, f_value, f_score, status, reason, *band)

    if current >= 1.0:
        holding = spec.kind in ("at_least", "at_most")
        return done(
            Status.ON_TRACK, "holding the level" if holding else f"at target: progress {raw:.2f}"
        )
    if spec.kind in ("at_least", "at_most"):
        status = Status.AT_RISK if current >= success_level else Status.OFF_TRACK
        return done(status, f"level broken: score {current:.2f} vs {success_level:.2f}")
    if at >= cycle_end:
        status = _grade(current, success_level, tolerance)
        return done(status, f"cycle over: final score {current:.2f} vs {success_level:.2f}")
    if trend is not None and f_score is not None:
        status = _grade(f_score, success_level, tolerance)
        cmp = ">=" if f_score >= success_level else "<"
        return done(
            status,
            f"forecast {f_score:.2f} {cmp} {success_level:.2f}; "
            f"progress {raw:.2f} vs pace {pace:.2f}",
        )
    # Raw progress, not the clamped score: below 0 the KR went the wrong way, and the
    # clamp would hide how far (see the module docstring).
    status = _grade(raw, pace * success_level, tolerance)
    return done(
        status, f"pace only ({plural(len(points), 'point')}): progress {raw:.2f} vs pace {pace:.2f}"
    )


def _raw_progress(spec: KrSpec, value: Decimal, current: float) -> float:
    # For levels to hold, "how far along" is the score itself; the raw formula would say
    # 2.0 for 97% uptime against a 95% level from a 93% baseline.
    if (
        spec.kind in ("increase", "decrease")
        and spec.baseline is not None
        and spec.baseline != spec.target
    ):
        return progress(value, spec.baseline, spec.target)
    return current


def _evaluate_milestone(current: float, pace: float, at: datetime, end: datetime) -> Evaluation:
    if current >= 1.0:
        return Evaluation(1.0, 1.0, pace, None, None, Status.ON_TRACK, "done")
    if at >= end:
        status, reason = Status.OFF_TRACK, "not done; cycle over"
    elif pace > MILESTONE_RISK_PACE:
        status, reason = Status.AT_RISK, f"not done; pace {pace:.2f} > {MILESTONE_RISK_PACE}"
    else:
        status, reason = Status.ON_TRACK, f"not done yet; pace {pace:.2f}"
    return Evaluation(0.0, 0.0, pace, None, None, status, reason)
