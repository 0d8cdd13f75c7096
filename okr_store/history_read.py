"""KRs' histories read from PostgreSQL as one array row per KR instead of one row per point.

Every run reads the successful values of the cycle so far for every KR it scores (the
forecast and staleness need them): with daily runs that is 45 points per KR mid-quarter,
450,000 rows at 10,000 KRs. Row by row, through SQLAlchemy's result processing, that took
about 4 microseconds a point; here the server aggregates each KR's points into two arrays
that the driver decodes in C, and the session's time zone is UTC for the statement so the
times arrive in UTC as the store's ``UtcDateTime`` would return them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

__all__ = ["pg_history"]

_SELECT = """
SELECT kr_id, array_agg(as_of ORDER BY as_of, id), array_agg(value ORDER BY as_of, id)
FROM measurements
WHERE kr_id = ANY(%(ids)s) AND outcome = 'ok'{bounds}
GROUP BY kr_id
"""


def pg_history(
    conn: sa.Connection,
    ids: Sequence[int],
    since: datetime | None = None,
    until: datetime | None = None,
    before: datetime | None = None,
) -> dict[int, list[tuple[datetime, Decimal]]]:
    """Each KR's successful ``(as_of, value)`` points, oldest first (PostgreSQL only).

    The same answer as :func:`okr_pipeline.okr_store.queries.history` (a test compares
    them), for a connection whose driver is psycopg. It sets the transaction's time zone
    to UTC: the connection must be the caller's own, for this read only.

    Args:
        conn: A connection to a PostgreSQL store, through psycopg, in its own transaction.
        ids: The KRs; each gets an entry, empty if it has no values.
        since: Only values as of this time or later.
        until: Only values as of this time or earlier.
        before: Only values as of strictly before this time.
    """
    result: dict[int, list[tuple[datetime, Decimal]]] = {kr_id: [] for kr_id in ids}
    if not ids:
        return result
    bounds = ""
    parameters: dict[str, Any] = {"ids": list(ids)}
    for name, operator, value in (
        ("since", ">=", since),
        ("until", "<=", until),
        ("before", "<", before),
    ):
        if value is not None:
            bounds += f" AND as_of {operator} %({name})s"
            parameters[name] = value
    # Times in UTC, as UtcDateTime returns them; SET LOCAL ends with this transaction.
    conn.exec_driver_sql("SET LOCAL TimeZone TO 'UTC'")
    rows = conn.exec_driver_sql(_SELECT.format(bounds=bounds), parameters).fetchall()
    for kr_id, times, values in rows:
        result[kr_id] = list(zip(times, values, strict=True))
    return result
