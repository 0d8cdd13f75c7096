"""The PostgreSQL history read (one array row per KR) against the generic one, row by row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from okr_pipeline.okr_store.history_read import pg_history
from okr_pipeline.okr_store.queries import history
from okr_pipeline.okr_store.records import MeasurementRecord
from okr_pipeline.okr_store.store import Store

from .conftest import kr, objective, okr_set

T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def db_url(postgres_url: str) -> str:
    """PostgreSQL only (the store tests' default runs SQLite too)."""
    return postgres_url


@pytest.fixture
def filled(store: Store) -> tuple[Store, list[int]]:
    store.sync_definitions(okr_set([objective("o", [kr("a"), kr("b"), kr("c"), kr("none")])]))
    ids = {k.kr_key: k.kr_id for k in store.active_key_results()}
    rows = []
    for day in range(20):
        at = T0 + day * DAY + timedelta(minutes=day)  # not on the hour, nor evenly apart
        rows.append(MeasurementRecord(ids["a"], at, at, "ok", Decimal(day) / 3))
        if day % 3:
            rows.append(MeasurementRecord(ids["b"], at, at, "ok", Decimal(f"1e{day}")))
        else:
            rows.append(MeasurementRecord(ids["b"], at, at, "error", None, "boom"))
    rows.append(MeasurementRecord(ids["c"], T0, T0, "no_data", None))
    run_id = store.start_run(T0)
    store.record_results(run_id, rows, [])
    return store, sorted(ids.values())


@pytest.mark.postgres
@pytest.mark.parametrize(
    "bounds",
    [
        {},
        {"since": T0 + 3 * DAY},
        {"until": T0 + 10 * DAY + timedelta(minutes=10)},  # a point exactly at the bound
        {"before": T0 + 10 * DAY + timedelta(minutes=10)},
        {"since": T0 + 2 * DAY, "before": T0 + 15 * DAY, "until": T0 + 30 * DAY},
    ],
    ids=["all", "since", "until", "before", "all-bounds"],
)
def test_the_array_read_is_the_row_read(
    filled: tuple[Store, list[int]], bounds: dict[str, datetime]
) -> None:
    store, ids = filled
    with store.engine.connect() as conn:
        rows = history(conn, ids, **bounds)
    with store.engine.connect() as conn:
        # A session in another time zone still gets UTC times, as UtcDateTime returns them.
        conn.exec_driver_sql("SET TimeZone TO 'America/St_Johns'")
        conn.commit()
        arrays = pg_history(conn, ids, **bounds)
    assert arrays == rows
    assert list(arrays) == ids and sum(len(p) for p in arrays.values()) > 10
    assert all(t.utcoffset() == timedelta(0) for p in arrays.values() for t, _ in p)
    # Through the store it is the array read on PostgreSQL: the same answer again.
    assert store.history(ids, **bounds) == rows
