"""Writing a run's measurements and evaluations: one current row per KR and as-of.

Measuring a KR again at an as-of it already has (a rerun, a backfill over stored dates)
replaces the row: the old measurement moves to ``superseded_measurements`` for audit and
the old evaluation is dropped (it is derived data). The unique keys on ``(kr_id, as_of)``
and ``(kr_id, evaluated_at)`` make the database refuse a second row whatever the code does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from okr_pipeline.okr_store.bulk import bulk_insert
from okr_pipeline.okr_store.models import Evaluation, Measurement, SupersededMeasurement
from okr_pipeline.okr_store.queries import id_filters
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord

MEASUREMENT_COLUMNS = (
    "run_id", "kr_id", "measured_at", "as_of", "value", "outcome", "error_message", "error_kind",
    "kind", "author", "note",
)  # fmt: skip
EVALUATION_COLUMNS = (
    "run_id", "kr_id", "evaluated_at", "value", "progress", "score", "expected_progress",
    "forecast_value", "forecast_score", "status", "reason", "forecast_low", "forecast_high",
)  # fmt: skip
_AUDITED = ("kr_id", "run_id", "measured_at", "as_of", "value", "outcome", "error_message",
            "error_kind", "kind", "author", "note")  # fmt: skip


def _by_time(pairs: Iterable[tuple[int, datetime]]) -> dict[datetime, list[int]]:
    # A run measures every KR at one as-of, so this is usually one group.
    grouped: dict[datetime, list[int]] = defaultdict(list)
    for kr_id, when in pairs:
        grouped[when].append(kr_id)
    return grouped


def supersede_measurements(
    conn: sa.Connection, pairs: Iterable[tuple[int, datetime]], run_id: int | None
) -> int:
    """Move the current measurements at these ``(kr_id, as_of)`` to the audit table.

    Returns:
        How many were moved.
    """
    table = Measurement.__table__
    moved = 0
    for as_of, ids in _by_time(pairs).items():
        for among in id_filters(conn, table.c.kr_id, ids):
            where = (table.c.as_of == as_of, among)
            source = sa.select(
                table.c.id,
                *(table.c[name] for name in _AUDITED),
                sa.literal(datetime.now(UTC), SupersededMeasurement.__table__.c.superseded_at.type),
                sa.literal(run_id, sa.Integer()),
            ).where(*where)
            conn.execute(
                sa.insert(SupersededMeasurement.__table__).from_select(
                    ["measurement_id", *_AUDITED, "superseded_at", "superseded_by_run_id"], source
                )
            )
            moved += conn.execute(sa.delete(table).where(*where)).rowcount
    return moved


def drop_evaluations(conn: sa.Connection, pairs: Iterable[tuple[int, datetime]]) -> None:
    """Delete the evaluations at these ``(kr_id, evaluated_at)``."""
    table = Evaluation.__table__
    for when, ids in _by_time(pairs).items():
        for among in id_filters(conn, table.c.kr_id, ids):
            conn.execute(sa.delete(table).where(table.c.evaluated_at == when, among))


def write_results(
    conn: sa.Connection,
    run_id: int,
    measurements: Sequence[MeasurementRecord],
    evaluations: Sequence[EvaluationRecord],
    replacing: Collection[int] | None = None,
) -> None:
    """Replace the rows at their (KR, as-of), inside ``conn``'s transaction.

    Args:
        conn: a connection inside a transaction.
        run_id: the run.
        measurements: the measurements to store.
        evaluations: the evaluations to store.
        replacing: only these KRs may have rows at their as-ofs already; None: any.
    """
    wanted = (lambda kr_id: True) if replacing is None else replacing.__contains__
    supersede_measurements(
        conn, ((m.kr_id, m.as_of) for m in measurements if wanted(m.kr_id)), run_id
    )
    drop_evaluations(conn, ((e.kr_id, e.evaluated_at) for e in evaluations if wanted(e.kr_id)))
    # Tuples straight from the attributes: dataclasses.asdict deep-copies every value
    # and alone costs more than the insert.
    measurement_rows = [
        (run_id, m.kr_id, m.measured_at, m.as_of, m.value, m.outcome, m.error_message,
         m.error_kind, m.kind, m.author, m.note)
        for m in measurements
    ]  # fmt: skip
    bulk_insert(conn, Measurement.__table__, MEASUREMENT_COLUMNS, measurement_rows)
    insert_evaluations(conn, [(run_id, e) for e in evaluations])


def insert_evaluations(
    conn: sa.Connection, evaluations: Sequence[tuple[int, EvaluationRecord]]
) -> None:
    """Insert ``(run_id, evaluation)`` rows (their (KR, as-of) must be free)."""
    rows = [
        (run_id, e.kr_id, e.evaluated_at, e.value, e.progress, e.score, e.expected_progress,
         e.forecast_value, e.forecast_score, str(e.status), e.reason, e.forecast_low,
         e.forecast_high)
        for run_id, e in evaluations
    ]  # fmt: skip
    bulk_insert(conn, Evaluation.__table__, EVALUATION_COLUMNS, rows)
