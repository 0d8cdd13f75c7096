"""Read queries of the store: active KRs, history, runs (latest status: ``status_query``).

Each is one SQL statement (``history`` one per 1,000 KR ids). "Latest per KR" is written as
correlated subqueries that the (kr_id, time) indexes answer with one seek per KR, so the
cost grows with the number of KRs, not with the length of their history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVarTuple, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import QueryableAttribute

from okr_pipeline.okr_core.definitions import SUCCESS_LEVELS
from okr_pipeline.okr_store.models import Cycle, Evaluation, KeyResult, Measurement, Objective, Run
from okr_pipeline.okr_store.records import RunRow, StoredKeyResult, StoredMeasurement

#: Bound on the ids in one IN list: SQLite and drivers cap parameters per statement.
IN_CHUNK = 1000
#: The source type of KRs whose values people check in (``connectors/manual.py``).
MANUAL = "manual"

_Ts = TypeVarTuple("_Ts")


def id_filters(
    conn: sa.Connection, column: sa.ColumnElement[int] | QueryableAttribute[int], ids: Sequence[int]
) -> list[sa.ColumnElement[bool]]:
    """``column IN ids`` as conditions, one statement each, as few as the database allows.

    PostgreSQL takes every id in one array parameter (``= ANY(...)``): one statement,
    and nothing to render per id (an IN list of 1,000 parameters costs milliseconds to
    expand and convert before it is sent). Elsewhere, IN lists of :data:`IN_CHUNK` ids.

    Args:
        conn: the connection the statements run on.
        column: the id column.
        ids: the ids (none: no condition, so no statement).
    """
    if not ids:
        return []
    if conn.dialect.name == "postgresql":
        array = sa.bindparam(None, list(ids), type_=postgresql.ARRAY(sa.Integer()))
        return [column == sa.any_(array)]
    return [column.in_(ids[start : start + IN_CHUNK]) for start in range(0, len(ids), IN_CHUNK)]


def _active() -> list[sa.ColumnElement[bool]]:
    return [KeyResult.archived_at.is_(None), Objective.archived_at.is_(None)]


def _definitions_join(stmt: sa.Select[*_Ts]) -> sa.Select[*_Ts]:
    return stmt.join(Objective, Objective.id == KeyResult.objective_id).join(
        Cycle, Cycle.id == Objective.cycle_id
    )


def active_key_results(
    conn: sa.Connection, at: datetime | None = None, kr_ids: Sequence[int] | None = None
) -> list[StoredKeyResult]:
    """Return every KR that is neither archived nor in an archived objective.

    Args:
        conn: connection.
        at: read ``last_as_of`` and ``last_good_as_of`` as they stood at this as-of (a
            backfill run sees the KR as it was then); None for no bound.
        kr_ids: only these KRs (a shard's), read in one statement per :func:`id_filters`
            chunk; None for all.

    A ``manual`` KR is evaluated at as-ofs where nobody checked in (no measurement is
    written there), so its ``last_as_of`` and ``latest_as_of`` count its evaluations too:
    its schedule, reruns and alerts then follow its evaluations as they follow the
    measurements of the others.
    """

    def latest(*where: sa.ColumnElement[bool]) -> sa.ScalarSelect[Any]:
        bound = () if at is None else (Measurement.as_of <= at,)
        return (
            sa.select(sa.func.max(Measurement.as_of))
            .where(Measurement.kr_id == KeyResult.id, *where, *bound)
            .scalar_subquery()
        )

    last_measured = latest()
    last_success = latest(Measurement.outcome == "ok")
    latest_any = (
        sa.select(sa.func.max(Measurement.as_of))
        .where(Measurement.kr_id == KeyResult.id)
        .scalar_subquery()
    )

    def evaluated(*bound: sa.ColumnElement[bool]) -> sa.Case[Any]:
        # Only manual KRs have evaluations without a measurement; CASE spares the others
        # the look-up.
        latest_evaluation = (
            sa.select(sa.func.max(Evaluation.evaluated_at))
            .where(Evaluation.kr_id == KeyResult.id, *bound)
            .scalar_subquery()
        )
        return sa.case((KeyResult.source_type == MANUAL, latest_evaluation), else_=None)

    last_evaluated = evaluated(*(() if at is None else (Evaluation.evaluated_at <= at,)))
    stmt = _definitions_join(
        sa.select(
            KeyResult.id,
            Objective.key,
            KeyResult.key,
            Cycle.name,
            KeyResult.title,
            KeyResult.unit,
            Objective.owner,
            Objective.type,
            Objective.success_level,
            Cycle.start_at,
            Cycle.end_at,
            KeyResult.kind,
            KeyResult.baseline,
            KeyResult.baseline_auto,
            KeyResult.target,
            KeyResult.target_value,
            KeyResult.floor,
            KeyResult.weight,
            KeyResult.schedule,
            KeyResult.source_json,
            KeyResult.source_type,
            last_measured,
            last_evaluated,
            last_success,
            KeyResult.alert_policy,
            latest_any,
            evaluated(),
        )
    )
    stmt = stmt.where(*_active()).order_by(Cycle.name, Objective.key, KeyResult.key)
    if kr_ids is None:
        rows = conn.execute(stmt).all()
    else:
        filters = id_filters(conn, KeyResult.id, sorted(set(kr_ids)))
        rows = [row for among in filters for row in conn.execute(stmt.where(among))]
        if len(filters) > 1:  # chunks of IN lists: their rows in the order above again
            rows.sort(key=lambda row: (row[3], row[1], row[2]))
    # Plain rows, read at once and unpacked by position, not ORM objects: nothing to
    # track, and 10,000 of them load in a fraction of the time. The dataclass's frozen
    # __init__ sets each field through object.__setattr__; filling __dict__ directly
    # gives the same object (StoredKeyResult has no __post_init__ and no __slots__).
    new = object.__new__
    result = []
    for (
        kr_id, objective_key, kr_key, cycle, title, unit, owner, objective_type,
        success_level, cycle_start, cycle_end, kind, baseline, baseline_auto, target,
        target_value, floor, weight, schedule, source, source_type, last_measured_at,
        last_evaluated_at, last_good_as_of, alert_policy, latest_measured_at,
        latest_evaluated_at,
    ) in rows:  # fmt: skip
        item = new(StoredKeyResult)
        item.__dict__.update(
            kr_id=kr_id,
            ref=f"{objective_key}/{kr_key}",
            cycle=cycle,
            objective_key=objective_key,
            kr_key=kr_key,
            title=title,
            unit=unit,
            owner=owner,
            objective_type=objective_type,
            success_level=(
                success_level if success_level is not None else SUCCESS_LEVELS[objective_type]
            ),
            cycle_start=cycle_start,
            cycle_end=cycle_end,
            kind=kind,
            baseline=baseline,
            baseline_auto=baseline_auto,
            target=target,
            target_value=target_value,
            floor=floor,
            weight=weight,
            schedule=schedule,
            source=source,
            source_type=source_type,
            last_as_of=_later(last_measured_at, last_evaluated_at),
            last_good_as_of=last_good_as_of,
            alert_policy=alert_policy,
            latest_as_of=_later(latest_measured_at, latest_evaluated_at),
        )
        result.append(item)
    return result


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return max(first, second)


def history(
    conn: sa.Connection,
    kr_ids: Iterable[int],
    since: datetime | None = None,
    until: datetime | None = None,
    before: datetime | None = None,
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
        before: only values as of strictly before this time (what an evaluation at
            ``before`` may see besides the value it scores).

    Returns:
        ``{kr_id: [(as_of, value), ...]}``.
    """
    ids = sorted(set(kr_ids))
    result: dict[int, list[tuple[datetime, Decimal]]] = {kr_id: [] for kr_id in ids}
    for among in id_filters(conn, Measurement.kr_id, ids):
        stmt = sa.select(Measurement.kr_id, Measurement.as_of, Measurement.value).where(
            among, Measurement.outcome == "ok"
        )
        if since is not None:
            stmt = stmt.where(Measurement.as_of >= since)
        if until is not None:
            stmt = stmt.where(Measurement.as_of <= until)
        if before is not None:
            stmt = stmt.where(Measurement.as_of < before)
        stmt = stmt.order_by(Measurement.kr_id, Measurement.as_of, Measurement.id)
        for kr_id, as_of, value in conn.execute(stmt):
            # Not None: the value_iff_ok check constraint gives every "ok" row a value.
            result[kr_id].append((as_of, cast(Decimal, value)))
    return result


def runs(conn: sa.Connection, limit: int = 20) -> list[RunRow]:
    """Return the latest ``limit`` runs, newest first."""
    table = Run.__table__
    stmt = sa.select(table).order_by(table.c.started_at.desc(), table.c.id.desc()).limit(limit)
    return [RunRow(**row._asdict()) for row in conn.execute(stmt)]


def last_good_before(
    conn: sa.Connection, kr_ids: Iterable[int], before: datetime
) -> dict[int, datetime]:
    """Return the as-of of each KR's latest good value strictly before ``before``.

    KRs that had none are left out.
    """
    ids = sorted(set(kr_ids))
    result: dict[int, datetime] = {}
    for among in id_filters(conn, Measurement.kr_id, ids):
        stmt = (
            sa.select(Measurement.kr_id, sa.func.max(Measurement.as_of))
            .where(
                among,
                Measurement.outcome == "ok",
                Measurement.as_of < before,
            )
            .group_by(Measurement.kr_id)
        )
        result.update({kr_id: when for kr_id, when in conn.execute(stmt)})
    return result


def measurements(
    conn: sa.Connection,
    kr_ids: Iterable[int],
    *,
    after: datetime | None = None,
    at: datetime | None = None,
) -> list[StoredMeasurement]:
    """Return the current measurements of the KRs, by KR then as-of.

    Args:
        conn: connection.
        kr_ids: the KRs.
        after: only those as of strictly after this time.
        at: only those as of exactly this time.
    """
    ids = sorted(set(kr_ids))
    rows: list[StoredMeasurement] = []
    for among in id_filters(conn, Measurement.kr_id, ids):
        stmt = sa.select(
            Measurement.kr_id,
            Measurement.run_id,
            Measurement.as_of,
            Measurement.measured_at,
            Measurement.outcome,
            Measurement.value,
            Measurement.error_message,
            Measurement.error_kind,
            Measurement.kind,
            Measurement.author,
            Measurement.note,
        ).where(among)
        if after is not None:
            stmt = stmt.where(Measurement.as_of > after)
        if at is not None:
            stmt = stmt.where(Measurement.as_of == at)
        stmt = stmt.order_by(Measurement.kr_id, Measurement.as_of)
        rows.extend(StoredMeasurement(**row._asdict()) for row in conn.execute(stmt))
    return rows


def evaluation_times(
    conn: sa.Connection,
    kr_ids: Iterable[int],
    *,
    after: datetime | None = None,
    at: datetime | None = None,
) -> list[tuple[int, int, datetime]]:
    """Return ``(kr_id, run_id, as_of)`` of the KRs' stored evaluations, by KR then as-of.

    Args:
        conn: connection.
        kr_ids: the KRs.
        after: only those as of strictly after this time.
        at: only those as of exactly this time.
    """
    ids = sorted(set(kr_ids))
    rows: list[tuple[int, int, datetime]] = []
    for among in id_filters(conn, Evaluation.kr_id, ids):
        stmt = sa.select(Evaluation.kr_id, Evaluation.run_id, Evaluation.evaluated_at).where(among)
        if after is not None:
            stmt = stmt.where(Evaluation.evaluated_at > after)
        if at is not None:
            stmt = stmt.where(Evaluation.evaluated_at == at)
        stmt = stmt.order_by(Evaluation.kr_id, Evaluation.evaluated_at)
        rows.extend((kr_id, run_id, when) for kr_id, run_id, when in conn.execute(stmt))
    return rows
