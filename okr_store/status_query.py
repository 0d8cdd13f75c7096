"""Where each KR stands: the one query behind ``okr status``, the dashboard and the report.

Written with SQLAlchemy Core on light descriptions of the tables (the columns it reads),
not on the ORM models: ``okr status`` imports this module and :mod:`okr_store.db` alone,
and the ORM, the models and the store's other queries took a fifth of a second to import,
as long as reading 10,000 KRs. ``tests/okr_store/test_status_query.py`` checks that the
descriptions' types are the models'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
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
        """The decimal's processor, remembered."""
        return _remembered(super().result_processor(dialect, coltype))


class _Time(UtcDateTime):
    """:class:`UtcDateTime`, each repeated time converted once (see :func:`_remembered`)."""

    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """The time's processor, remembered."""
        return _remembered(super().result_processor(dialect, coltype))


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
    kr, objective, cycles = KEY_RESULTS, OBJECTIVES, CYCLES
    latest_eval = EVALUATIONS.alias("latest_eval")
    latest_meas = MEASUREMENTS.alias("latest_meas")
    last_good = MEASUREMENTS.alias("last_good")
    inner_eval = EVALUATIONS.alias("inner_eval")
    inner_meas = MEASUREMENTS.alias("inner_meas")
    eval_bound = () if at is None else (inner_eval.c.evaluated_at <= at,)
    meas_bound = () if at is None else (inner_meas.c.as_of <= at,)
    latest_eval_id = _latest_id(inner_eval, inner_eval.c.evaluated_at, *eval_bound)
    latest_meas_id = _latest_id(inner_meas, inner_meas.c.as_of, *meas_bound)
    last_good_id = _latest_id(
        inner_meas, inner_meas.c.as_of, inner_meas.c.outcome == "ok", *meas_bound
    )
    columns: dict[str, sa.ColumnElement[Any]] = {
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
        "last_good_value": last_good.c.value,
        "last_good_at": last_good.c.measured_at,
        "last_good_as_of": last_good.c.as_of,
        "measured_as_of": latest_meas.c.as_of,
    }
    # Selected in the order of StatusRow's fields, so that each row fills one positionally.
    stmt = (
        sa.select(*(columns[name].label(name) for name in _STATUS_FIELDS))
        .select_from(kr)
        .join(objective, objective.c.id == kr.c.objective_id)
        .join(cycles, cycles.c.id == objective.c.cycle_id)
        .outerjoin(latest_eval, latest_eval.c.id == latest_eval_id)
        .outerjoin(latest_meas, latest_meas.c.id == latest_meas_id)
        # The latest measurement is the last good one whenever it is good (most KRs): the
        # search for an older good one is made only for the others.
        .outerjoin(
            last_good,
            last_good.c.id
            == sa.case((latest_meas.c.outcome == "ok", latest_meas.c.id), else_=last_good_id),
        )
        .where(kr.c.archived_at.is_(None), objective.c.archived_at.is_(None))
    )
    if cycle is not None:
        stmt = stmt.where(cycles.c.name == cycle)
    stmt = stmt.order_by(cycles.c.name, objective.c.key, kr.c.key)
    return _status_rows(conn.execute(stmt))


def _latest_id(
    table: sa.FromClause, by: sa.ColumnElement[Any], *where: sa.ColumnElement[bool]
) -> sa.ScalarSelect[Any]:
    # The id of the KR's latest row of ``table`` by ``by``: one seek on its (kr_id, time)
    # index per KR, whatever the length of its history.
    return (
        sa.select(table.c.id)
        .where(table.c.kr_id == KEY_RESULTS.c.id, *where)
        .order_by(by.desc())
        .limit(1)
        .scalar_subquery()
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
