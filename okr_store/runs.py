"""Run bookkeeping: a run's start, its lease (heartbeat), its end, and crashed runs closed.

Each function takes a connection; :class:`okr_store.store.Store` owns the transactions.
A run holds a lease while it works; a run still ``running`` after its lease ran out lost
its process, and the next run closes it as ``crashed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from okr_pipeline.okr_store.models import RUN_STATUSES, RUN_TRIGGERS, Run
from okr_pipeline.okr_store.records import RunCounts, RunRow


def start_run(
    conn: sa.Connection,
    as_of: datetime,
    flow_run_id: str | None,
    lease_until: datetime | None,
    trigger: str = "run",
) -> int:
    """Insert a ``running`` run with no KRs counted yet and return its id.

    Raises:
        ValueError: an unknown trigger.
    """
    if trigger not in RUN_TRIGGERS:
        raise ValueError(f"invalid run trigger {trigger!r}; valid: {', '.join(RUN_TRIGGERS)}")
    result = conn.execute(
        sa.insert(Run).values(
            started_at=datetime.now(UTC),
            as_of=as_of,
            flow_run_id=flow_run_id,
            lease_until=lease_until,
            total=0,
            ok=0,
            no_data=0,
            error=0,
            status="running",
            trigger=trigger,
        )
    )
    run_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    assert isinstance(run_id, int)
    return run_id


def end_values(counts: RunCounts | Mapping[str, int], status: str) -> dict[str, Any]:
    """Return the columns :func:`finish_run` writes, checked before any transaction opens.

    Raises:
        ValueError: invalid status.
        TypeError: ``counts`` has other keys than :class:`RunCounts`.
    """
    if status not in RUN_STATUSES:
        raise ValueError(f"invalid run status {status!r}; valid: {', '.join(RUN_STATUSES)}")
    values: dict[str, Any] = asdict(
        counts if isinstance(counts, RunCounts) else RunCounts(**counts)
    )
    return {"status": status, **values}


def finish_run(conn: sa.Connection, run_id: int, values: Mapping[str, Any]) -> None:
    """Store a run's end: the :func:`end_values` and the time it finished.

    Raises:
        KeyError: no such run.
    """
    result = conn.execute(
        sa.update(Run).where(Run.id == run_id).values(finished_at=datetime.now(UTC), **values)
    )
    if result.rowcount != 1:
        raise KeyError(f"no run with id {run_id}")


def renew_lease(conn: sa.Connection, run_id: int, until: datetime) -> None:
    """Extend the lease of a run that is still ``running`` (a finished run keeps its own)."""
    conn.execute(
        sa.update(Run).where(Run.id == run_id, Run.status == "running").values(lease_until=until)
    )


def close_crashed_runs(conn: sa.Connection, now: datetime) -> list[RunRow]:
    """Close as ``crashed`` the ``running`` runs whose lease ran out (or that have none).

    Returns:
        The runs closed, as they were before.
    """
    stale = sa.and_(
        Run.status == "running", sa.or_(Run.lease_until.is_(None), Run.lease_until < now)
    )
    rows = [RunRow(**row._asdict()) for row in conn.execute(sa.select(Run.__table__).where(stale))]
    if rows:
        conn.execute(
            sa.update(Run)
            .where(Run.id.in_([r.id for r in rows]))
            .values(status="crashed", finished_at=now)
        )
    return rows
