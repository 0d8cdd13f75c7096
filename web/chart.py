"""The series of a KR's chart: values over as-of, baseline, target, pace, forecast and band.

Numbers here are floats, for drawing only (the exact values are in the history table). A
value too large for a float is left off the chart rather than drawn as infinity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from okr_pipeline.web.model import BandPoint, ChartData, NotePoint, Point

__all__ = ["chart_data"]

#: Kinds whose expected pace is a line from the baseline at the start to the target at the end.
PACED_KINDS = ("increase", "decrease")


def _number(value: Decimal | float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def chart_data(
    *,
    start: datetime,
    end: datetime,
    unit: str,
    kind: str,
    points: Sequence[tuple[datetime, Decimal]],
    baseline: Decimal | None,
    target: Decimal | None,
    forecast_value: Decimal | None,
    forecast_low: Decimal | None,
    forecast_high: Decimal | None,
    notes: Sequence[tuple[datetime, str]] = (),
) -> ChartData:
    """The chart of a KR over its cycle.

    Args:
        start: The cycle's start.
        end: The cycle's end.
        unit: The KR's unit (axis title).
        kind: The KR's kind (only increasing and decreasing KRs have a pace line).
        points: Its good values ``(as_of, value)`` in the cycle, any order.
        baseline: Its baseline, if known.
        target: Its absolute target, if known.
        forecast_value: The latest evaluation's forecast at the cycle's end, if any.
        forecast_low: Low end of the forecast's band.
        forecast_high: High end of the forecast's band.
        notes: ``(as_of, text)`` of the KR's notes; each is drawn at the value in force
            at its as-of (the baseline before the first value; left off without either).

    Returns:
        The series; the forecast and its band start at the last value and end at ``end``.
    """
    measured = []
    for as_of, value in sorted(points):
        y = _number(value)
        if y is not None and start <= as_of <= end:
            measured.append(Point(x=as_of, y=y))
    base, goal = _number(baseline), _number(target)
    pace = []
    if kind in PACED_KINDS and base is not None and goal is not None:
        pace = [Point(x=start, y=base), Point(x=end, y=goal)]
    forecast: list[Point] = []
    band: list[BandPoint] = []
    projected = _number(forecast_value)
    if projected is not None and measured:
        last = measured[-1]
        forecast = [last, Point(x=end, y=projected)]
        low, high = _number(forecast_low), _number(forecast_high)
        if low is not None and high is not None:
            band = [
                BandPoint(x=last.x, low=last.y, high=last.y),
                BandPoint(x=end, low=min(low, high), high=max(low, high)),
            ]
    placed = []
    for as_of, text in sorted(notes):
        if not start <= as_of <= end:
            continue
        before = [point.y for point in measured if point.x <= as_of]
        level = before[-1] if before else base
        if level is not None:
            placed.append(NotePoint(x=as_of, y=level, text=text))
    return ChartData(
        start=start,
        end=end,
        unit=unit,
        measured=measured,
        baseline=base,
        target=goal,
        pace=pace,
        forecast=forecast,
        band=band,
        notes=placed,
    )
