"""The status query: its light table descriptions agree with the ORM models, and its two
forms (PostgreSQL's LATERAL subqueries, the correlated ones by id) give the same rows.

:mod:`okr_store.status_query` names the columns it reads without importing the models;
each must exist in the model's table with the same type, or a value would come back
unconverted (text for a decimal, a naive time) or the query would fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.scoring import Status
from okr_pipeline.okr_store import status_query
from okr_pipeline.okr_store.db import make_engine, upgrade
from okr_pipeline.okr_store.models import Base
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord
from okr_pipeline.okr_store.store import Store

from .conftest import kr, objective, okr_set

TABLES = [
    status_query.CYCLES,
    status_query.OBJECTIVES,
    status_query.KEY_RESULTS,
    status_query.EVALUATIONS,
    status_query.MEASUREMENTS,
]


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_columns_have_the_models_types(table: sa.TableClause) -> None:
    model = Base.metadata.tables[table.name]
    for column in table.columns:
        assert column.name in model.columns, f"{table.name}.{column.name} is not in the model"
        declared = model.columns[column.name].type
        # The status query's decimals and times are subclasses that remember conversions.
        assert isinstance(column.type, type(declared)), (
            f"{table.name}.{column.name}: {type(column.type).__name__} in the status query, "
            f"{type(declared).__name__} in the model"
        )
        if isinstance(declared, sa.String) and declared.__class__ is sa.String:
            assert column.type.__class__ is sa.String


# --- PostgreSQL reads the latest rows by LATERAL subqueries; SQLite by their ids. ---------

T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def _measured(kr_id: int, at: datetime, outcome: str, value: str | None = None) -> Any:
    error = "HTTP 503" if outcome == "error" else None
    number = None if value is None else Decimal(value)
    return MeasurementRecord(kr_id, at + timedelta(minutes=3), at, outcome, number, error, None)


def _evaluated(kr_id: int, at: datetime, status: Status, value: str | None = None) -> Any:
    number = None if value is None else Decimal(value)
    return EvaluationRecord(
        kr_id=kr_id, evaluated_at=at, status=status, value=number, progress=0.25, score=0.25,
        forecast_low=number, reason="" if value else "no value",
    )  # fmt: skip


@pytest.fixture
def history_store(postgres_url: str) -> Iterator[Store]:
    """A PostgreSQL store with latest, failed, missing, future and archived rows."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    store = Store(engine)
    keys = ["ok", "failed", "never_ok", "no_data", "never", "gone"]
    store.sync_definitions(okr_set([objective("o", [kr(key) for key in keys])], "fp-1"))
    # "gone" is archived by the next sync; a second objective sorts first.
    store.sync_definitions(
        okr_set([objective("o", [kr(key) for key in keys[:-1]]), objective("a", [kr("z")])], "fp-2")
    )
    ids = {row.kr_key: row.kr_id for row in store.active_key_results()}
    plan = {  # KR: its outcome (and value) at T0, T0 + 1 h and T0 + 2 h (None: nothing)
        "ok": [("ok", "1"), ("ok", "2.50"), ("ok", "3")],
        "failed": [("ok", "10"), ("error", None), None],
        "never_ok": [("error", None), ("error", None), None],
        "no_data": [("ok", "7"), ("no_data", None), ("ok", "8")],
        "z": [None, ("ok", "-4.125"), None],
    }
    for step in range(3):
        at = T0 + step * HOUR
        run = store.start_run(at)
        done = [(ids[key], outcomes[step]) for key, outcomes in plan.items() if outcomes[step]]
        status = {"ok": Status.ON_TRACK, "error": Status.ERROR, "no_data": Status.NO_DATA}
        store.record_results(
            run,
            [_measured(kr_id, at, *result) for kr_id, result in done],
            [_evaluated(kr_id, at, status[result[0]], result[1]) for kr_id, result in done],
        )
    yield store
    store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("at", [None, T0 + 90 * MINUTE, T0 - HOUR])
@pytest.mark.parametrize("cycle", [None, "2026-Q4", "2025-Q1"])
def test_lateral_and_id_subqueries_give_the_same_rows(
    history_store: Store, at: datetime | None, cycle: str | None
) -> None:
    with history_store.engine.connect() as conn:
        lateral = conn.execute(status_query.status_select(cycle, at, lateral=True)).all()
        by_id = conn.execute(status_query.status_select(cycle, at, lateral=False)).all()
        read = status_query.latest_status(conn, cycle=cycle, at=at)
    assert lateral == by_id
    assert [tuple(row.__dict__.values()) for row in read] == [tuple(row) for row in by_id]
    if cycle != "2025-Q1":
        assert [row.kr_key for row in read] == ["z", "failed", "never", "never_ok", "no_data", "ok"]
    else:
        assert read == []


@pytest.mark.postgres
def test_the_rows_say_what_the_cases_need(history_store: Store) -> None:
    with history_store.engine.connect() as conn:
        rows = {row.kr_key: row for row in status_query.latest_status(conn, at=T0 + 90 * MINUTE)}
    assert (rows["ok"].value, rows["ok"].last_good_value) == (Decimal("2.50"), Decimal("2.50"))
    assert rows["ok"].measured_as_of == rows["ok"].last_good_as_of == T0 + HOUR
    failed = rows["failed"]
    assert (failed.outcome, failed.last_good_value, failed.last_good_as_of) == (
        "error", Decimal(10), T0,
    )  # fmt: skip
    assert failed.last_good_at == T0 + 3 * MINUTE
    assert (rows["never_ok"].outcome, rows["never_ok"].last_good_value) == ("error", None)
    assert (rows["no_data"].outcome, rows["no_data"].last_good_value) == ("no_data", Decimal(7))
    assert (rows["never"].outcome, rows["never"].status, rows["never"].reason) == (None, None, "")


@pytest.mark.postgres
@pytest.mark.parametrize("autocommit", [False, True], ids=["transaction", "autocommit"])
def test_times_come_back_in_utc_whatever_the_session_zone(
    history_store: Store, autocommit: bool
) -> None:
    # latest_status asks for UTC for its transaction; outside one (autocommit) it cannot,
    # and the times are converted.
    engine = history_store.engine
    if autocommit:
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TIME ZONE 'America/New_York'")
        rows = status_query.latest_status(conn)
        zone = conn.exec_driver_sql("SHOW TIME ZONE").scalar_one()
    times = [
        value for row in rows for value in row.__dict__.values() if isinstance(value, datetime)
    ]
    assert times and all(value.tzinfo is UTC for value in times)
    assert max(times) == T0 + 2 * HOUR + 3 * MINUTE
    # With autocommit the zone set above stays; in a transaction, SET LOCAL's ends with it.
    assert zone == ("America/New_York" if autocommit else "UTC")
