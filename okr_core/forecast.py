"""Forecasts: a robust (Theil-Sen) trend of a KR's values projected to the cycle's end.

The slope is the median of the pairwise slopes, so a few outliers do not move the line;
the band comes from the 25th and 75th percentile slopes. A forecast needs
``MIN_FORECAST_POINTS`` points spanning ``MIN_FORECAST_SPAN`` of the cycle: before that a
trend is mostly noise, and :func:`okr_core.scoring.evaluate` relies on pace alone.

Pure: no I/O; values come in as ``Decimal``, the forecast goes out as floats.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

__all__ = ["MAX_PAIRS", "MIN_FORECAST_POINTS", "MIN_FORECAST_SPAN", "Forecast", "forecast"]

# Forecasts need this share of the cycle between the first and last point; before that a
# trend is mostly noise, and status relies on pace alone.
MIN_FORECAST_SPAN = 0.1
MIN_FORECAST_POINTS = 3
# Theil-Sen is O(n^2) in pairs; past this many pairs we sample them (deterministically).
MAX_PAIRS = 2000


@dataclass(frozen=True)
class Forecast:
    """A robust trend projected to the end of the cycle.

    Attributes:
        value: Projected value at the cycle's end (median Theil-Sen line).
        low: Lower end of the band (from the 25th/75th percentile slopes).
        high: Upper end of the band.
        slope_per_day: The median slope, in units per day.
        points: How many points the trend was fitted on.
    """

    value: float
    low: float
    high: float
    slope_per_day: float
    points: int


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks; the list is never empty here.
    pos = (len(sorted_values) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def _slopes(data: Sequence[tuple[float, float]]) -> list[float]:
    """The slope of each pair of points whose times differ (a sample past MAX_PAIRS pairs)."""
    n = len(data)
    if n * (n - 1) // 2 <= MAX_PAIRS:
        # Every pair, without indexing: a quarter of daily points is 2,000 pairs per KR,
        # and a run scores 10,000 KRs.
        return [
            (y - y0) / (t - t0)
            for k, (t0, y0) in enumerate(data)
            for t, y in data[k + 1 :]
            if t != t0
        ]
    times = [t for t, _ in data]
    values = [y for _, y in data]
    firsts, seconds = _sampled_pairs(n)
    return [
        (values[j] - values[i]) / (times[j] - times[i])
        for i, j in zip(firsts, seconds, strict=True)
        if times[j] != times[i]
    ]


@lru_cache(maxsize=1024)
def _sampled_pairs(n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    # MAX_PAIRS of the pairs of n points (which have more than that). The same n always
    # gives the same pairs, so they are made once per n: sampling them took most of a
    # forecast's time (7 ms at 90 points, 70 s over 10,000 KRs). Seeded by n so the same
    # history always gives the same forecast.
    rng = random.Random(n)
    pairs = []
    for _ in range(MAX_PAIRS):
        i, j = rng.sample(range(n), 2)
        pairs.append((min(i, j), max(i, j)))
    return tuple(i for i, _ in pairs), tuple(j for _, j in pairs)


def forecast(
    points: Sequence[tuple[datetime, Decimal]], start: datetime, end: datetime
) -> Forecast | None:
    """Project the value at the cycle's end from a robust (Theil-Sen) trend.

    The slope is the median of pairwise slopes, the intercept the median of
    ``y - slope * t``, so a few outliers do not move the line. Time is in seconds since
    ``start``. Points outside [start, end] are ignored.

    Args:
        points: ``(time, value)`` history of the KR in this cycle, any order.
        start: Start of the cycle.
        end: End of the cycle.

    Returns:
        The forecast, or None with fewer than 3 points or when the points span less than
        10% of the cycle (too early to trust a trend).
    """
    cycle_seconds = (end - start).total_seconds()
    if cycle_seconds <= 0:
        return None
    data = sorted(
        ((ts - start).total_seconds(), float(v)) for ts, v in points if start <= ts <= end
    )
    if not all(math.isfinite(y) for _, y in data):
        return None  # a value beyond float range (1e999999999): no trend to speak of
    if len(data) < MIN_FORECAST_POINTS:
        return None
    if data[-1][0] - data[0][0] < MIN_FORECAST_SPAN * cycle_seconds:
        return None
    slopes = sorted(_slopes(data))
    if not slopes:
        return None

    def project(slope: float) -> float:
        intercept = statistics.median(y - slope * t for t, y in data)
        return intercept + slope * cycle_seconds

    middle = len(slopes) // 2  # the median of the sorted slopes, as statistics.median
    median_slope = slopes[middle] if len(slopes) % 2 else (slopes[middle - 1] + slopes[middle]) / 2
    band = (project(_percentile(slopes, 0.25)), project(_percentile(slopes, 0.75)))
    if not all(math.isfinite(x) for x in (median_slope, project(median_slope), *band)):
        return None  # huge values overflowed float arithmetic: pace alone is safer
    return Forecast(
        value=project(median_slope),
        low=min(band),
        high=max(band),
        slope_per_day=median_slope * 86400,
        points=len(data),
    )
