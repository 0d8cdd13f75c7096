"""Every measurement of every active KR with the evaluation of its as-of: ``okr export``.

One SQL statement: measurements joined to their KR, objective and cycle, and (outer) to
the evaluation the run made as of the same time, so a spreadsheet gets value, status and
score side by side. Ordered by cycle, objective, KR and as-of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from okr_pipeline.okr_store.models import Cycle, Evaluation, KeyResult, Measurement, Objective


@dataclass(frozen=True)
class ExportRow:
    """One measurement of one KR, and how the KR stood as of it.

    Attributes:
        cycle: the cycle's name.
        objective: the objective's id.
        kr: the KR's id.
        title: the KR's title.
        unit: the KR's unit.
        owner: the objective's owner.
        as_of: the time the value describes.
        measured_at: when it was fetched (or entered).
        outcome: ``ok``, ``no_data`` or ``error``.
        value: the value, exact (``ok`` only).
        error: why it failed, or a note for ``no_data``.
        kind: ``measured`` or ``checkin``.
        author: who entered a check-in.
        note: the check-in's note.
        run_id: the run that stored it.
        status: the status of the evaluation as of the same time, if any.
        score: its score.
        progress: its raw progress.
        expected_progress: the pace it was compared with.
        reason: why it has its status.
    """

    cycle: str
    objective: str
    kr: str
    title: str
    unit: str
    owner: str
    as_of: datetime
    measured_at: datetime
    outcome: str
    value: Decimal | None
    error: str | None
    kind: str
    author: str | None
    note: str | None
    run_id: int
    status: str | None
    score: float | None
    progress: float | None
    expected_progress: float | None
    reason: str | None

    @property
    def ref(self) -> str:
        """``objective/kr``."""
        return f"{self.objective}/{self.kr}"


def export_rows(conn: sa.Connection, cycle: str | None = None) -> list[ExportRow]:
    """Every measurement of the KRs that are not archived (of one cycle, or all).

    Args:
        conn: connection.
        cycle: only this cycle (by name); every cycle if None.
    """
    stmt = (
        sa.select(
            Cycle.name.label("cycle"),
            Objective.key.label("objective"),
            KeyResult.key.label("kr"),
            KeyResult.title,
            KeyResult.unit,
            Objective.owner,
            Measurement.as_of,
            Measurement.measured_at,
            Measurement.outcome,
            Measurement.value,
            Measurement.error_message.label("error"),
            Measurement.kind,
            Measurement.author,
            Measurement.note,
            Measurement.run_id,
            Evaluation.status,
            Evaluation.score,
            Evaluation.progress,
            Evaluation.expected_progress,
            Evaluation.reason,
        )
        .join(KeyResult, KeyResult.id == Measurement.kr_id)
        .join(Objective, Objective.id == KeyResult.objective_id)
        .join(Cycle, Cycle.id == Objective.cycle_id)
        .outerjoin(
            Evaluation,
            sa.and_(
                Evaluation.kr_id == Measurement.kr_id,
                Evaluation.evaluated_at == Measurement.as_of,
            ),
        )
        .where(KeyResult.archived_at.is_(None), Objective.archived_at.is_(None))
        .order_by(Cycle.name, Objective.key, KeyResult.key, Measurement.as_of)
    )
    if cycle is not None:
        stmt = stmt.where(Cycle.name == cycle)
    return [ExportRow(**row._asdict()) for row in conn.execute(stmt)]
