"""Read queries of the store: active KRs, history, latest status, runs.

Each is one SQL statement (``history`` one per 1,000 KR ids). "Latest per KR" is written as
correlated subqueries that the (kr_id, time) indexes answer with one seek per KR, so the
cost grows with the number of KRs, not with the length of their history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TypeVarTuple, cast

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from okr_core.definitions import SUCCESS_LEVELS
from okr_store.models import Cycle, Evaluation, KeyResult, Measurement, Objective, Run
from okr_store.records import RunRow, StatusRow, StoredKeyResult

#: Bound on the ids in one IN list: SQLite and drivers cap parameters per statement.
IN_CHUNK = 1000

_Ts = TypeVarTuple("_Ts")


def _active() -> list[sa.ColumnElement[bool]]:
    return [KeyResult.archived_at.is_(None), Objective.archived_at.is_(None)]


def _definitions_join(stmt: sa.Select[*_Ts]) -> sa.Select[*_Ts]:
    return stmt.join(Objective, Objective.id == KeyResult.objective_id).join(
        Cycle, Cycle.id == Objective.cycle_id
    )


def active_key_results(conn: sa.Connection) -> list[StoredKeyResult]:
    """Return every KR that is neither archived nor in an archived objective."""
    last_measured = (
        sa.select(sa.func.max(Measurement.measured_at))
        .where(Measurement.kr_id == KeyResult.id)
        .scalar_subquery()
    )
    last_success = (
        sa.select(sa.func.max(Measurement.measured_at))
        .where(Measurement.kr_id == KeyResult.id, Measurement.outcome == "ok")
        .scalar_subquery()
    )
    stmt = _definitions_join(
        sa.select(
            *KeyResult.__table__.c,
            Objective.key.label("objective_key"),
            Objective.owner,
            Objective.type.label("objective_type"),
            Objective.success_level,
            Cycle.name.label("cycle"),
            Cycle.start_at,
            Cycle.end_at,
            last_measured.label("last_measured_at"),
            last_success.label("last_success_at"),
        )
    )
    stmt = stmt.where(*_active()).order_by(Cycle.name, Objective.key, KeyResult.key)
    result = []
    for kr in conn.execute(stmt):
        # Plain rows, not ORM objects: nothing to track, and 10,000 of them load fast.
        result.append(
            StoredKeyResult(
                kr_id=kr.id,
                ref=f"{kr.objective_key}/{kr.key}",
                cycle=kr.cycle,
                objective_key=kr.objective_key,
                kr_key=kr.key,
                title=kr.title,
                unit=kr.unit,
                owner=kr.owner,
                objective_type=kr.objective_type,
                success_level=(
                    kr.success_level
                    if kr.success_level is not None
                    else SUCCESS_LEVELS[kr.objective_type]
                ),
                cycle_start=kr.start_at,
                cycle_end=kr.end_at,
                kind=kr.kind,
                baseline=kr.baseline,
                baseline_auto=kr.baseline_auto,
                target=kr.target,
                target_value=kr.target_value,
                floor=kr.floor,
                weight=kr.weight,
                schedule=kr.schedule,
                source=kr.source_json,
                source_type=kr.source_type,
                last_measured_at=kr.last_measured_at,
                last_success_at=kr.last_success_at,
                alert_policy=kr.alert_policy,
            )
        )
    return result


def history(
    conn: sa.Connection,
    kr_ids: Iterable[int],
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[int, list[tuple[datetime, Decimal]]]:
    """Return the successful values of each KR, oldest first, by their as-of time.

    The time of each point is the measurement's ``as_of`` (the moment the value describes),
    not ``measured_at`` (when it was fetched): they differ for backfills (``--as-of``), and
    trends must follow the former.

    Args:
        conn: connection.
        kr_ids: KRs to read; each gets an entry, empty if it has no values.
        since: only values as of this time or later.
        until: only values as of this time or earlier.

    Returns:
        ``{kr_id: [(as_of, value), ...]}``.
    """
    ids = sorted(set(kr_ids))
    result: dict[int, list[tuple[datetime, Decimal]]] = {kr_id: [] for kr_id in ids}
    for start in range(0, len(ids), IN_CHUNK):
        stmt = sa.select(Measurement.kr_id, Measurement.as_of, Measurement.value).where(
            Measurement.kr_id.in_(ids[start : start + IN_CHUNK]), Measurement.outcome == "ok"
        )
        if since is not None:
            stmt = stmt.where(Measurement.as_of >= since)
        if until is not None:
            stmt = stmt.where(Measurement.as_of <= until)
        stmt = stmt.order_by(Measurement.kr_id, Measurement.as_of, Measurement.id)
        for kr_id, as_of, value in conn.execute(stmt):
            # Not None: the value_iff_ok check constraint gives every "ok" row a value.
            result[kr_id].append((as_of, cast(Decimal, value)))
    return result


def latest_status(conn: sa.Connection, cycle: str | None = None) -> list[StatusRow]:
    """Return where each non-archived KR stands (optionally of one cycle only)."""
    latest_eval = aliased(Evaluation, name="latest_eval")
    latest_meas = aliased(Measurement, name="latest_meas")
    last_good = aliased(Measurement, name="last_good")
    inner_eval = aliased(Evaluation, name="inner_eval")
    inner_meas = aliased(Measurement, name="inner_meas")
    latest_eval_id = (
        sa.select(inner_eval.id)
        .where(inner_eval.kr_id == KeyResult.id)
        .order_by(inner_eval.evaluated_at.desc(), inner_eval.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    latest_meas_id = (
        sa.select(inner_meas.id)
        .where(inner_meas.kr_id == KeyResult.id)
        .order_by(inner_meas.measured_at.desc(), inner_meas.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    last_good_id = (
        sa.select(inner_meas.id)
        .where(inner_meas.kr_id == KeyResult.id, inner_meas.outcome == "ok")
        .order_by(inner_meas.measured_at.desc(), inner_meas.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = _definitions_join(
        sa.select(
            KeyResult.id.label("kr_id"),
            Cycle.name.label("cycle"),
            Objective.key.label("objective_key"),
            Objective.title.label("objective_title"),
            Objective.owner,
            Objective.type.label("objective_type"),
            Objective.parent_key,
            KeyResult.key.label("kr_key"),
            KeyResult.title.label("kr_title"),
            KeyResult.unit,
            KeyResult.kind,
            KeyResult.weight,
            KeyResult.schedule,
            KeyResult.baseline,
            KeyResult.target,
            KeyResult.target_value,
            latest_eval.value,
            latest_eval.progress,
            latest_eval.score,
            latest_eval.expected_progress,
            latest_eval.forecast_value,
            latest_eval.forecast_score,
            latest_eval.forecast_low,
            latest_eval.forecast_high,
            latest_eval.status,
            sa.func.coalesce(latest_eval.reason, "").label("reason"),
            latest_eval.evaluated_at,
            latest_meas.measured_at,
            latest_meas.outcome,
            latest_meas.error_message,
            last_good.value.label("last_good_value"),
            last_good.measured_at.label("last_good_at"),
        )
    )
    stmt = (
        stmt.outerjoin(latest_eval, latest_eval.id == latest_eval_id)
        .outerjoin(latest_meas, latest_meas.id == latest_meas_id)
        .outerjoin(last_good, last_good.id == last_good_id)
        .where(*_active())
    )
    if cycle is not None:
        stmt = stmt.where(Cycle.name == cycle)
    stmt = stmt.order_by(Cycle.name, Objective.key, KeyResult.key)
    return [StatusRow(**row._asdict()) for row in conn.execute(stmt)]


def runs(conn: sa.Connection, limit: int = 20) -> list[RunRow]:
    """Return the latest ``limit`` runs, newest first."""
    table = Run.__table__
    stmt = sa.select(table).order_by(table.c.started_at.desc(), table.c.id.desc()).limit(limit)
    return [RunRow(**row._asdict()) for row in conn.execute(stmt)]
