"""When a KR is ``stale``: no good value for longer than its refresh schedule allows.

A KR refreshed hourly that has had no good value for a day is not merely failing: its last
number can no longer be trusted as current. It is stale once ``Settings.stale_after_periods``
of its scheduled refreshes (3 by default) have passed since its last good value.

Refreshes are counted on the schedule itself, not as a period times a count: with
``0 9 * * 1-5`` a good value on Friday 09:00 and a failed run on Monday 09:00 is one missed
refresh, not three days without a value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronsim import CronSim


def missed_refreshes(schedule: str, since: datetime, now: datetime, enough: float) -> int:
    """How many times ``schedule`` fired after ``since`` and before ``now``.

    Counting stops at ``enough``: a KR silent for a year is not iterated fire by fire.
    """
    fires = CronSim(schedule, since.astimezone(UTC).replace(tzinfo=None))
    end = now.astimezone(UTC).replace(tzinfo=None)
    count = 0
    while count < enough and next(fires) < end:
        count += 1
    return count


def stale_reason(
    last_good_at: datetime | None, now: datetime, schedule: str, periods: float
) -> str | None:
    """Why a KR is stale, or None when it is not (or never had a good value to go stale).

    Stale once ``periods`` scheduled refreshes have passed since the last good value (a
    refresh at ``now`` itself is the one being judged, so it does not count yet).

    Args:
        last_good_at: The as-of of the KR's last good value.
        now: The time to judge at.
        schedule: The KR's cron schedule.
        periods: How many missed refreshes make it stale.
    """
    if last_good_at is None:
        return None
    missed = missed_refreshes(schedule, last_good_at, now, periods)
    if missed < periods:
        return None
    return (
        f"no good value for {_words(now - last_good_at)}: {missed} scheduled refreshes "
        f"missed ('{schedule}' allows {periods:g})"
    )


def _words(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.0f}s"
