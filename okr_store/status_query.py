"""Where each KR stands: the one query behind ``okr status``, the dashboard and the report.

Each KR's latest evaluation and measurement (and its last good value) are found by
correlated subqueries of their ids, or on PostgreSQL by LATERAL subqueries, faster there;
``status_select`` builds either, and a test checks that both give the same rows.

Written with SQLAlchemy Core on light descriptions of the tables (the columns it reads),
not on the ORM models: ``okr status`` imports this module and :mod:`okr_store.db` alone,
and the ORM, the models and the store's other queries took a fifth of a second to import,
as long as reading 10,000 KRs. ``tests/okr_store/test_status_query.py`` checks that the
descriptions' types are the models'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from okr_pipeline.okr_store.records import StatusRow
from okr_pipeline.okr_store.types import ExactDecimal, UtcDateTime


def _remembered(
    process: Callable[[Any], Any] | None,
) -> Callable[[Any], Any] | None:
    """``process``, converting each text or time it is given once.

    Over 10,000 KRs the same few values come back again and again (the run's as-of, the
    targets, the weights), and converting each row's times and decimals cost more than
    reading them: SQLite hands both back as text, PostgreSQL's times still go to UTC. Only
    text and datetimes are remembered, which are equal only when they convert alike (a
    time in another zone is the same UTC time); not decimals, where 1.0 equals 1. What is
    remembered is bounded: the dashboard's process reads the status again and again.
    """
    if process is None:
        return None
    seen: dict[str | datetime, Any] = {}

    def convert(raw: Any) -> Any:
        if raw.__class__ is not str and raw.__class__ is not datetime:
            # ExactDecimal keeps a Decimal as it is: spare the call for each.
            return raw if raw is None or raw.__class__ is Decimal else process(raw)
        found = seen.get(raw)
        if found is None:
            if len(seen) >= _REMEMBERED:
                seen.clear()
            found = seen[raw] = process(raw)
        return found

    return convert


#: How many values one column's converter remembers at most.
_REMEMBERED = 50_000


class _Decimal(ExactDecimal):
    """:class:`ExactDecimal`, each repeated text converted once (see :func:`_remembered`)."""

    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """The decimal's processor, remembered; none where the driver gives Decimals."""
        if self.load_dialect_impl(dialect).result_processor(dialect, coltype) is None and (
            dialect.name == "postgresql"
        ):
            # psycopg reads NUMERIC as Decimal, which ExactDecimal returns as it is.
            return None
        return _remembered(super().result_processor(dialect, coltype))


class _Time(UtcDateTime):
    """:class:`UtcDateTime`, each repeated time converted once (see :func:`_remembered`)."""

    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """The time's processor, remembered; on PostgreSQL, a UTC time is kept as it is."""
        process = _remembered(super().result_processor(dialect, coltype))
        if dialect.name != "postgresql" or process is None:
            return process
        convert = process

        def keep_utc(raw: Any) -> Any:
            # psycopg gives aware times in the session's zone: in UTC (latest_status asks
            # for it), nothing is left to do.
            return raw if raw is None or raw.tzinfo is UTC else convert(raw)

        return keep_utc


_DECIMAL = _Decimal()
_TIME = _Time()

CYCLES = sa.table("cycles", sa.column("id", sa.Integer), sa.column("name", sa.String))
OBJECTIVES = sa.table(
    "objectives",
    sa.column("id", sa.Integer),
    sa.column("cycle_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("title", sa.Text),
    sa.column("owner", sa.String),
    sa.column("type", sa.String),
    sa.column("parent_key", sa.String),
    sa.column("archived_at", _TIME),
)
KEY_RESULTS = sa.table(
    "key_results",
    sa.column("id", sa.Integer),
    sa.column("objective_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("title", sa.Text),
    sa.column("unit", sa.String),
    sa.column("kind", sa.String),
    sa.column("weight", _DECIMAL),
    sa.column("schedule", sa.String),
    sa.column("baseline", _DECIMAL),
    sa.column("target", sa.String),
    sa.column("target_value", _DECIMAL),
    sa.column("floor", _DECIMAL),
    sa.column("archived_at", _TIME),
)
EVALUATIONS = sa.table(
    "evaluations",
    sa.column("id", sa.Integer),
    sa.column("kr_id", sa.Integer),
    sa.column("evaluated_at", _TIME),
    sa.column("value", _DECIMAL),
    sa.column("progress", sa.Double),
    sa.column("score", sa.Double),
    sa.column("expected_progress", sa.Double),
    sa.column("forecast_value", _DECIMAL),
    sa.column("forecast_score", sa.Double),
    sa.column("forecast_low", _DECIMAL),
    sa.column("forecast_high", _DECIMAL),
    sa.column("status", sa.String),
    sa.column("reason", sa.Text),
)
MEASUREMENTS = sa.table(
    "measurements",
    sa.column("id", sa.Integer),
    sa.column("kr_id", sa.Integer),
    sa.column("as_of", _TIME),
    sa.column("measured_at", _TIME),
    sa.column("value", _DECIMAL),
    sa.column("outcome", sa.String),
    sa.column("error_message", sa.Text),
)

#: StatusRow's fields in their order (``latest_status`` selects its columns so).
_STATUS_FIELDS = tuple(field.name for field in dataclasses.fields(StatusRow))


def latest_status(
    conn: sa.Connection, cycle: str | None = None, at: datetime | None = None
) -> list[StatusRow]:
    """Return where each non-archived KR stands (optionally of one cycle only).

    "Latest" is by as-of, the time the values describe, not by when they were fetched: a
    backfill run made today does not replace the current state with an old one.

    Args:
        conn: connection.
        cycle: only this cycle's KRs (by name); all cycles if None.
        at: where they stood as of this time (nothing later is shown); None for no bound.

    Returns:
        The rows, ordered by cycle, objective and KR.
    """
    lateral = conn.dialect.name == "postgresql"
    if lateral:
        # Times come back in the session's zone; in UTC they need no converting (psycopg
        # reads them faster too, and _Time keeps them as they are). This transaction only.
        conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
    return _status_rows(conn.execute(status_select(cycle, at, lateral=lateral)))


def status_select(cycle: str | None, at: datetime | None, *, lateral: bool) -> sa.Select[Any]:
    """The statement of :func:`latest_status`, its columns StatusRow's fields in order.

    Args:
        cycle: as for :func:`latest_status`.
        at: as for :func:`latest_status`.
        lateral: each KR's latest rows read by LATERAL subqueries (PostgreSQL), not by
            correlated subqueries of their ids (any database); both give the same rows.
    """
    kr, objective, cycles = KEY_RESULTS, OBJECTIVES, CYCLES
    # The KR's own columns, by StatusRow field (_selected puts them and the latest values
    # in the order of its fields, so that each row fills one positionally).
    own: dict[str, sa.ColumnElement[Any]] = {
        "kr_id": kr.c.id,
        "cycle": cycles.c.name,
        "objective_key": objective.c.key,
        "objective_title": objective.c.title,
        "owner": objective.c.owner,
        "objective_type": objective.c.type,
        "parent_key": objective.c.parent_key,
        "kr_key": kr.c.key,
        "kr_title": kr.c.title,
        "unit": kr.c.unit,
        "kind": kr.c.kind,
        "weight": kr.c.weight,
        "schedule": kr.c.schedule,
        "baseline": kr.c.baseline,
        "target": kr.c.target,
        "target_value": kr.c.target_value,
        "floor": kr.c.floor,
    }
    krs = (
        sa.select(*(column.label(name) for name, column in own.items()))
        .select_from(kr)
        .join(objective, objective.c.id == kr.c.objective_id)
        .join(cycles, cycles.c.id == objective.c.cycle_id)
        .where(kr.c.archived_at.is_(None), objective.c.archived_at.is_(None))
    )
    if cycle is not None:
        krs = krs.where(cycles.c.name == cycle)
    if lateral:
        # The KRs sorted first, then each one's latest rows joined in that order: the
        # server sorts 10,000 narrow rows once, not the wide joined ones (no second sort:
        # a nested loop keeps the order of its outer side, and PostgreSQL knows it).
        ordered = krs.order_by(*_ORDER).subquery("kr")
        latest = _latest_by_lateral(ordered.c.kr_id, at)
        stmt = sa.select(*_selected(ordered.c, latest)).select_from(ordered)
        order: list[sa.ColumnElement[Any]] = [ordered.c[name] for name in _ORDER]
    else:
        latest = _latest_by_subqueries(kr.c.id, at)
        stmt = krs.with_only_columns(*_selected(own, latest))
        order = [own[name] for name in _ORDER]
    for joined, on in latest.joins:
        stmt = stmt.outerjoin(joined, on)
    return stmt.order_by(*order)


#: The order of the rows: by cycle, objective and KR.
_ORDER = ("cycle", "objective_key", "kr_key")


def _selected(own: Any, latest: _Latest) -> list[sa.ColumnElement[Any]]:
    # StatusRow's fields in its order: the KR's own columns (``own``, by name) and the
    # latest values.
    latest_eval, latest_meas, last_good = latest.evaluation, latest.measurement, latest.last_good
    values: dict[str, sa.ColumnElement[Any]] = {
        "value": latest_eval.c.value,
        "progress": latest_eval.c.progress,
        "score": latest_eval.c.score,
        "expected_progress": latest_eval.c.expected_progress,
        "forecast_value": latest_eval.c.forecast_value,
        "forecast_score": latest_eval.c.forecast_score,
        "forecast_low": latest_eval.c.forecast_low,
        "forecast_high": latest_eval.c.forecast_high,
        "status": latest_eval.c.status,
        "reason": sa.func.coalesce(latest_eval.c.reason, ""),
        "evaluated_at": latest_eval.c.evaluated_at,
        "measured_at": latest_meas.c.measured_at,
        "outcome": latest_meas.c.outcome,
        "error_message": latest_meas.c.error_message,
        "last_good_value": last_good["value"],
        "last_good_at": last_good["measured_at"],
        "last_good_as_of": last_good["as_of"],
        "measured_as_of": latest_meas.c.as_of,
    }
    return [(values[name] if name in values else own[name]).label(name) for name in _STATUS_FIELDS]


@dataclasses.dataclass(frozen=True)
class _Latest:
    """Each KR's latest evaluation and measurement and its last good value, to join to it.

    ``last_good`` names the value, measured_at and as_of of the KR's latest ``ok``
    measurement; ``joins`` are what to outer-join to the KRs, in order, with their ON.
    """

    evaluation: sa.FromClause
    measurement: sa.FromClause
    last_good: dict[str, sa.ColumnElement[Any]]
    joins: tuple[tuple[sa.FromClause, sa.ColumnElement[bool]], ...]


def _latest_by_subqueries(kr_id: sa.ColumnElement[Any], at: datetime | None) -> _Latest:
    # Each latest row joined by its id, found by a correlated subquery: one seek on the
    # (kr_id, time) index per KR, whatever the length of its history (SQLite has no LATERAL).
    latest_eval = EVALUATIONS.alias("latest_eval")
    latest_meas = MEASUREMENTS.alias("latest_meas")
    last_good = MEASUREMENTS.alias("last_good")
    inner_eval = EVALUATIONS.alias("inner_eval")
    inner_meas = MEASUREMENTS.alias("inner_meas")
    eval_bound = () if at is None else (inner_eval.c.evaluated_at <= at,)
    meas_bound = () if at is None else (inner_meas.c.as_of <= at,)
    latest_eval_id = _latest_id(inner_eval, kr_id, inner_eval.c.evaluated_at, *eval_bound)
    latest_meas_id = _latest_id(inner_meas, kr_id, inner_meas.c.as_of, *meas_bound)
    last_good_id = _latest_id(
        inner_meas, kr_id, inner_meas.c.as_of, inner_meas.c.outcome == "ok", *meas_bound
    )
    return _Latest(
        evaluation=latest_eval,
        measurement=latest_meas,
        last_good={name: last_good.c[name] for name in ("value", "measured_at", "as_of")},
        joins=(
            (latest_eval, latest_eval.c.id == latest_eval_id),
            (latest_meas, latest_meas.c.id == latest_meas_id),
            # The latest measurement is the last good one whenever it is good (most KRs):
            # the search for an older good one is made only for the others.
            (
                last_good,
                last_good.c.id
                == sa.case((latest_meas.c.outcome == "ok", latest_meas.c.id), else_=last_good_id),
            ),
        ),
    )


def _latest_id(
    table: sa.FromClause,
    kr_id: sa.ColumnElement[Any],
    by: sa.ColumnElement[Any],
    *where: sa.ColumnElement[bool],
) -> sa.ScalarSelect[Any]:
    # The id of the KR's latest row of ``table`` by ``by``.
    return (
        sa.select(table.c.id)
        .where(table.c.kr_id == kr_id, *where)
        .order_by(by.desc())
        .limit(1)
        .scalar_subquery()
    )


def _latest_by_lateral(kr_id: sa.ColumnElement[Any], at: datetime | None) -> _Latest:
    # PostgreSQL: each latest row read whole by a LATERAL subquery, the index scan that
    # finds it giving its columns at once, where the subqueries above find an id and then
    # look the row up again by it. Over 10,000 KRs (KRs sorted first): 80-90 ms on the
    # server against 120-150 ms for the other form (EXPLAIN ANALYZE, the two alternated).
    evaluations, measurements = EVALUATIONS.alias("e"), MEASUREMENTS.alias("m")
    good = MEASUREMENTS.alias("g")
    latest_eval = _latest_row(
        evaluations, kr_id, evaluations.c.evaluated_at, at, name="latest_eval"
    )
    latest_meas = _latest_row(measurements, kr_id, measurements.c.as_of, at, name="latest_meas")
    is_ok = latest_meas.c.outcome == "ok"
    # Searched only where the latest measurement is not ok itself (PostgreSQL checks a
    # condition on the outer row alone once per KR, before touching the index).
    last_good = _latest_row(
        good, kr_id, good.c.as_of, at, good.c.outcome == "ok", latest_meas.c.outcome != "ok",
        name="last_good",
    )  # fmt: skip
    return _Latest(
        evaluation=latest_eval,
        measurement=latest_meas,
        last_good={
            name: sa.case((is_ok, latest_meas.c[name]), else_=last_good.c[name])
            for name in ("value", "measured_at", "as_of")
        },
        joins=tuple((table, sa.true()) for table in (latest_eval, latest_meas, last_good)),
    )


#: Columns the status reads from none of its LATERAL subqueries.
_UNREAD = frozenset({"id", "kr_id"})


def _latest_row(
    table: sa.FromClause,
    kr_id: sa.ColumnElement[Any],
    by: sa.ColumnElement[Any],
    at: datetime | None,
    *where: sa.ColumnElement[bool],
    name: str,
) -> sa.FromClause:
    # The KR's latest row of ``table`` by ``by`` (at ``at`` or before) as a LATERAL
    # subquery, with the columns the status reads.
    bound = () if at is None else (by <= at,)
    return (
        sa.select(*(column for column in table.c if column.name not in _UNREAD))
        .where(table.c.kr_id == kr_id, *where, *bound)
        .order_by(by.desc())
        .limit(1)
        .lateral(name)
    )


def _status_rows(rows: Iterable[Sequence[Any]]) -> list[StatusRow]:
    # The overview of 10,000 KRs spent most of its Python time building these rows: a
    # frozen dataclass's __init__ sets each of its 35 fields through object.__setattr__,
    # after Row._asdict built a dict per row. The values are the store's own typed
    # columns, in the fields' order, so each row fills a new instance's __dict__ at once
    # (StatusRow has no __post_init__ and no __slots__: nothing is skipped).
    new = object.__new__
    result = []
    for row in rows:
        item = new(StatusRow)
        item.__dict__.update(zip(_STATUS_FIELDS, row, strict=True))
        result.append(item)
    return result
