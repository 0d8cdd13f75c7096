"""A generated demo warehouse: a quarter of synthetic podcast-product data in SQLite.

The numbers are random but seeded, and shaped so that the demo shows every status: some
KRs on pace, one at risk, one off track.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

SCHEMA = """
CREATE TABLE listens (user_id INTEGER, podcast_id INTEGER, ts TEXT, first_time INTEGER);
CREATE TABLE subscriptions (user_id INTEGER, podcast_id INTEGER, ts TEXT);
CREATE TABLE recommendations (ts TEXT, shown INTEGER, clicked INTEGER);
CREATE TABLE surveys (ts TEXT, score INTEGER);
CREATE TABLE support_tickets (opened_at TEXT, first_response_at TEXT);
CREATE TABLE uptime_checks (ts TEXT, up INTEGER);
CREATE INDEX listens_ts ON listens (ts);
CREATE INDEX subscriptions_ts ON subscriptions (ts);
CREATE INDEX recommendations_ts ON recommendations (ts);
CREATE INDEX surveys_ts ON surveys (ts);
CREATE INDEX support_opened ON support_tickets (opened_at);
CREATE INDEX uptime_ts ON uptime_checks (ts);
"""


def quarter_of(day: date) -> tuple[str, date, date]:
    """The calendar quarter holding ``day``: its name, first and last day."""
    q = (day.month - 1) // 3
    start = date(day.year, 3 * q + 1, 1)
    end_month = 3 * q + 3
    next_start = date(day.year + (end_month == 12), end_month % 12 + 1, 1)
    return f"{day.year}-Q{q + 1}", start, next_start - timedelta(days=1)


def _iso(moment: datetime) -> str:
    # Stored as ISO text in UTC so that SQLite compares times as strings correctly.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def build_warehouse(path: Path, *, start: date, end: datetime, seed: int = 7) -> None:
    """Create the demo warehouse at ``path`` with data from two weeks before ``start`` to ``end``.

    Args:
        path: The SQLite file to create (replaced if it exists).
        start: The cycle's first day.
        end: The last moment to generate data for (usually now).
        seed: Seed of the random numbers, so that every demo is the same.
    """
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    cycle_start = datetime(start.year, start.month, start.day, tzinfo=UTC)
    first = cycle_start - timedelta(days=14)
    days = max(1, (end - first).days + 1)
    listens, subs, recs, surveys, tickets, checks = [], [], [], [], [], []
    for d in range(days):
        day = first + timedelta(days=d)
        if day > end:
            break
        # Share of the quarter elapsed (negative before it starts): drives the trends.
        t = (day - cycle_start).days / 91
        growth = max(0.0, t)
        new_listeners = int(140 * (1 + 0.26 * growth) + rng.gauss(0, 6))
        for i in range(new_listeners + 260):
            moment = day + timedelta(seconds=rng.randrange(86400))
            listens.append(
                (rng.randrange(5000), rng.randrange(300), _iso(moment), int(i < new_listeners))
            )
        for _ in range(int(40 * (1 + 0.5 * growth))):
            subs.append(
                (
                    rng.randrange(900),
                    rng.randrange(300),
                    _iso(day + timedelta(hours=rng.randrange(24))),
                )
            )
        for hour in range(0, 24, 3):
            shown = rng.randrange(180, 220)
            rate = 0.30 + 0.05 * growth + rng.gauss(0, 0.01)
            recs.append((_iso(day + timedelta(hours=hour)), shown, int(shown * rate)))
        for _ in range(12):
            score = min(5, max(1, round(rng.gauss(3.55 + 0.25 * growth, 0.8))))
            surveys.append((_iso(day + timedelta(hours=rng.randrange(24))), score))
        for _ in range(20):
            opened = day + timedelta(minutes=rng.randrange(1440))
            hours = max(0.2, rng.gauss(5.5 - 3.6 * growth, 0.8))
            tickets.append((_iso(opened), _iso(opened + timedelta(hours=hours))))
        for minute in range(0, 1440, 10):
            # A rough fortnight in the middle of the quarter pulls uptime under 95%.
            outage = 0.2 if 0.35 < t < 0.5 else 0.02
            checks.append((_iso(day + timedelta(minutes=minute)), int(rng.random() > outage)))
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO listens VALUES (?, ?, ?, ?)", listens)
        conn.executemany("INSERT INTO subscriptions VALUES (?, ?, ?)", subs)
        conn.executemany("INSERT INTO recommendations VALUES (?, ?, ?)", recs)
        conn.executemany("INSERT INTO surveys VALUES (?, ?)", surveys)
        conn.executemany("INSERT INTO support_tickets VALUES (?, ?)", tickets)
        conn.executemany("INSERT INTO uptime_checks VALUES (?, ?)", checks)
    # sqlite3's context manager commits but does not close.
    conn.close()
