"""Read-only queries the dashboard needs beyond :class:`okr_store.Store`'s.

One SQL statement each, none per KR: the store's version, the cycles with their KR counts,
one KR's definition by ``objective/kr`` (or every KR's of a cycle), its evaluations over
time, and the failures of a page of runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from okr_pipeline.okr_core.definitions import SUCCESS_LEVELS
from okr_pipeline.okr_store.models import (
    Cycle,
    Evaluation,
    KeyResult,
    Measurement,
    Meta,
    Objective,
    Run,
)
from okr_pipeline.okr_store.store import Store
from okr_pipeline.okr_store.sync import FINGERPRINT_KEY

__all__ = [
    "KrDefinitionRow",
    "cycle_key_results",
    "cycles",
    "find_key_result",
    "kr_evaluations",
    "kr_refs",
    "run_failures",
    "store_version",
]


@dataclass(frozen=True)
class KrDefinitionRow:
    """One KR's definition with its objective and cycle, as stored."""

    kr_id: int
    ref: str
    cycle: str
    cycle_start: datetime
    cycle_end: datetime
    objective_key: str
    objective_title: str
    objective_type: str
    parent_key: str | None
    success_level: float
    owner: str
    kr_key: str
    title: str
    unit: str
    kind: str
    baseline: Decimal | None
    target: str | None
    target_value: Decimal | None
    floor: Decimal | None
    weight: Decimal
    schedule: str
    source: dict[str, Any]
    source_type: str


def _active() -> tuple[sa.ColumnElement[bool], ...]:
    return (KeyResult.archived_at.is_(None), Objective.archived_at.is_(None))


def cycles(store: Store) -> list[tuple[str, datetime, datetime, int]]:
    """Every cycle with active KRs: ``(name, start, end, KR count)``, newest start first."""
    stmt = (
        sa.select(Cycle.name, Cycle.start_at, Cycle.end_at, sa.func.count(KeyResult.id))
        .join(Objective, Objective.cycle_id == Cycle.id)
        .join(KeyResult, KeyResult.objective_id == Objective.id)
        .where(*_active())
        .group_by(Cycle.id, Cycle.name, Cycle.start_at, Cycle.end_at)
        .order_by(Cycle.start_at.desc(), Cycle.name)
    )
    with store.engine.connect() as conn:
        return [(name, start, end, int(n)) for name, start, end, n in conn.execute(stmt)]


def store_version(store: Store) -> tuple[object, ...]:
    """A value that changes whenever what the overview shows may have changed.

    Every write that moves a KR's state adds rows with new ids (runs, measurements and
    evaluations, check-ins included: a replaced row is deleted and inserted again), and a
    definition sync stores a new fingerprint. Each part is one index seek.
    """
    stmt = sa.select(
        sa.select(sa.func.max(Run.id)).scalar_subquery(),
        sa.select(sa.func.max(Measurement.id)).scalar_subquery(),
        sa.select(sa.func.max(Evaluation.id)).scalar_subquery(),
        sa.select(Meta.value).where(Meta.key == FINGERPRINT_KEY).scalar_subquery(),
    )
    with store.engine.connect() as conn:
        return tuple(conn.execute(stmt).one())


def kr_refs(store: Store) -> list[str]:
    """Every active KR's ``objective/kr`` (for "did you mean")."""
    stmt = (
        sa.select(Objective.key, KeyResult.key)
        .join(KeyResult, KeyResult.objective_id == Objective.id)
        .where(*_active())
    )
    with store.engine.connect() as conn:
        return sorted({f"{o}/{k}" for o, k in conn.execute(stmt)})


def _definitions() -> sa.Select[*tuple[Any, ...]]:
    # Every active KR's definition with its objective and cycle, newest cycle first.
    return (
        sa.select(
            KeyResult.id,
            KeyResult.key,
            KeyResult.title,
            KeyResult.unit,
            KeyResult.kind,
            KeyResult.baseline,
            KeyResult.target,
            KeyResult.target_value,
            KeyResult.floor,
            KeyResult.weight,
            KeyResult.schedule,
            KeyResult.source_json,
            KeyResult.source_type,
            Objective.key.label("objective_key"),
            Objective.title.label("objective_title"),
            Objective.type.label("objective_type"),
            Objective.parent_key,
            Objective.success_level,
            Objective.owner,
            Cycle.name.label("cycle"),
            Cycle.start_at,
            Cycle.end_at,
        )
        .join(Objective, Objective.id == KeyResult.objective_id)
        .join(Cycle, Cycle.id == Objective.cycle_id)
        .where(*_active())
        .order_by(Cycle.start_at.desc(), Objective.key, KeyResult.key)
    )


def _definition(row: sa.Row[Any]) -> KrDefinitionRow:
    return KrDefinitionRow(
        kr_id=row.id,
        ref=f"{row.objective_key}/{row.key}",
        cycle=row.cycle,
        cycle_start=row.start_at,
        cycle_end=row.end_at,
        objective_key=row.objective_key,
        objective_title=row.objective_title,
        objective_type=row.objective_type,
        parent_key=row.parent_key,
        success_level=(
            row.success_level
            if row.success_level is not None
            else SUCCESS_LEVELS[row.objective_type]
        ),
        owner=row.owner,
        kr_key=row.key,
        title=row.title,
        unit=row.unit,
        kind=row.kind,
        baseline=row.baseline,
        target=row.target,
        target_value=row.target_value,
        floor=row.floor,
        weight=row.weight,
        schedule=row.schedule,
        source=dict(row.source_json or {}),
        source_type=row.source_type,
    )


def find_key_result(store: Store, ref: str, cycle: str | None = None) -> list[KrDefinitionRow]:
    """The active KRs answering to ``ref``: ``objective/kr``, or a KR id alone.

    Args:
        store: The store.
        ref: ``objective/kr`` or a KR id.
        cycle: Only in this cycle; else every cycle's, newest cycle first.

    Returns:
        The matches (empty: none; several: the same ref in several cycles, or a KR id
        in several objectives).
    """
    objective_key, slash, kr_key = ref.partition("/")
    stmt = _definitions()
    if slash:
        stmt = stmt.where(Objective.key == objective_key, KeyResult.key == kr_key)
    else:
        stmt = stmt.where(KeyResult.key == ref)
    if cycle is not None:
        stmt = stmt.where(Cycle.name == cycle)
    with store.engine.connect() as conn:
        return [_definition(row) for row in conn.execute(stmt)]


def cycle_key_results(store: Store, cycle: str) -> dict[str, KrDefinitionRow]:
    """Every active KR of ``cycle`` by ``objective/kr``, in one query (the report's)."""
    stmt = _definitions().where(Cycle.name == cycle)
    with store.engine.connect() as conn:
        return {kr.ref: kr for kr in map(_definition, conn.execute(stmt))}


def kr_evaluations(store: Store, kr_id: int, limit: int = 1000) -> list[Any]:
    """The KR's evaluations, newest as-of first (rows with the ``Evaluation`` columns)."""
    table = Evaluation.__table__
    stmt = (
        sa.select(table)
        .where(table.c.kr_id == kr_id)
        .order_by(table.c.evaluated_at.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(stmt))


def run_failures(store: Store, run_ids: Iterable[int]) -> dict[int, list[tuple[str, str, str]]]:
    """The KRs each run could not measure: ``{run_id: [(ref, outcome, message), ...]}``."""
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    stmt = (
        sa.select(
            Measurement.run_id,
            Objective.key,
            KeyResult.key,
            Measurement.outcome,
            Measurement.error_message,
        )
        .join(KeyResult, KeyResult.id == Measurement.kr_id)
        .join(Objective, Objective.id == KeyResult.objective_id)
        .where(Measurement.run_id.in_(ids), Measurement.outcome != "ok")
        .order_by(Measurement.run_id, Objective.key, KeyResult.key)
    )
    result: dict[int, list[tuple[str, str, str]]] = {}
    with store.engine.connect() as conn:
        for run_id, objective_key, kr_key, outcome, message in conn.execute(stmt):
            result.setdefault(run_id, []).append(
                (f"{objective_key}/{kr_key}", outcome, message or "")
            )
    return result
