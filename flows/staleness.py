"""When a KR is ``stale``: no good value for longer than its refresh schedule allows.

A KR refreshed hourly that has had no good value for a day is not merely failing: its last
number can no longer be trusted as current. It is stale once its last good value is older
than ``Settings.stale_after_periods`` periods of its own schedule (3 by default).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronsim import CronSim


def schedule_period(schedule: str, around: datetime) -> timedelta:
    """The time between two runs of a cron ``schedule`` after ``around``."""
    fires = CronSim(schedule, around.astimezone(UTC).replace(tzinfo=None))
    first = next(fires)
    return next(fires) - first


def stale_reason(
    last_good_at: datetime | None, now: datetime, schedule: str, periods: float
) -> str | None:
    """Why a KR is stale, or None when it is not (or never had a good value to go stale).

    Args:
        last_good_at: When the KR last got a value.
        now: The time to judge at.
        schedule: The KR's cron schedule.
        periods: How many schedule periods without a good value make it stale.
    """
    if last_good_at is None:
        return None
    allowed = schedule_period(schedule, now) * periods
    age = now - last_good_at
    if age <= allowed:
        return None
    return f"no good value for {_words(age)}; its schedule allows {_words(allowed)}"


def _words(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.0f}s"
