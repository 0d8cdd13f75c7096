"""The forecast against the textbook Theil-Sen estimator it implements."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from okr_pipeline.okr_core.forecast import MAX_PAIRS, forecast

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 12, 31, tzinfo=UTC)

# Up to 63 points every pair is used (63 * 62 / 2 <= MAX_PAIRS), so the definition applies
# as written; the points may share times, fall outside the cycle, or be out of order.
POINTS = st.lists(
    st.tuples(
        st.integers(min_value=-48, max_value=2300).map(lambda h: START + timedelta(hours=h)),
        st.integers(min_value=-(10**6), max_value=10**6).map(lambda v: Decimal(v) / 8),
    ),
    max_size=63,
)


def textbook(points: list[tuple[datetime, Decimal]]) -> tuple[float, float, float] | None:
    """Median pairwise slope, median intercept; the band from the quartile slopes."""
    data = sorted(((t - START).total_seconds(), float(v)) for t, v in points if START <= t <= END)
    if len(data) < 3 or data[-1][0] - data[0][0] < 0.1 * (END - START).total_seconds():
        return None
    slopes = sorted(
        (y2 - y1) / (t2 - t1)
        for k, (t1, y1) in enumerate(data)
        for t2, y2 in data[k + 1 :]
        if t2 != t1
    )
    if not slopes:
        return None
    span = (END - START).total_seconds()

    def at_end(slope: float) -> float:
        return statistics.median(y - slope * t for t, y in data) + slope * span

    quartiles = statistics.quantiles(slopes, n=4, method="inclusive") if len(slopes) > 1 else []
    low, high = (quartiles[0], quartiles[2]) if quartiles else (slopes[0], slopes[0])
    return at_end(statistics.median(slopes)), at_end(low), at_end(high)


@given(POINTS)
def test_the_forecast_is_theil_sen(points: list[tuple[datetime, Decimal]]) -> None:
    assert len(points) * (len(points) - 1) // 2 <= MAX_PAIRS
    expected = textbook(points)
    result = forecast(points, START, END)
    if expected is None:
        assert result is None
        return
    assert result is not None
    value, low, high = expected
    scale = max(1.0, abs(value), abs(low), abs(high))
    assert abs(result.value - value) <= 1e-9 * scale
    assert abs(result.low - min(low, high)) <= 1e-9 * scale
    assert abs(result.high - max(low, high)) <= 1e-9 * scale
