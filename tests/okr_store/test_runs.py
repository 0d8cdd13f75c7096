"""Runs, measurements and evaluations: atomic batches, history and latest status."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.scoring import Status
from okr_pipeline.okr_store.models import Evaluation, Measurement
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord, RunCounts
from okr_pipeline.okr_store.store import Store

from .conftest import kr, objective, okr_set

T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def krs(store: Store) -> dict[str, int]:
    store.sync_definitions(
        okr_set([objective("o", [kr("a"), kr("b"), kr("never", unit="%")], parent=None)])
    )
    return {k.kr_key: k.kr_id for k in store.active_key_results()}


def _ok(kr_id: int, value: str, at: datetime) -> MeasurementRecord:
    return MeasurementRecord(kr_id, measured_at=at, as_of=at, outcome="ok", value=Decimal(value))


def _eval(
    kr_id: int, at: datetime, status: Status = Status.ON_TRACK, **kw: Any
) -> EvaluationRecord:
    return EvaluationRecord(kr_id=kr_id, evaluated_at=at, status=status, **kw)


def _count(engine: sa.Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


def test_run_lifecycle(store: Store, krs: dict[str, int]) -> None:
    first = store.start_run(T0, flow_run_id="f-1")
    store.finish_run(first, RunCounts(total=3, ok=2, no_data=1))
    second = store.start_run(T0 + HOUR)
    store.finish_run(second, {"total": 3, "error": 3}, "failed")
    latest, earlier = store.runs(limit=5)
    assert (latest.id, latest.status, latest.error) == (second, "failed", 3)
    assert latest.flow_run_id is None
    assert (earlier.id, earlier.status, earlier.ok, earlier.no_data) == (first, "completed", 2, 1)
    assert earlier.as_of == T0 and earlier.finished_at is not None
    assert earlier.finished_at.tzinfo == UTC
    assert len(store.runs(limit=1)) == 1
    with pytest.raises(ValueError, match="invalid run status"):
        store.finish_run(first, RunCounts(), "weird")
    with pytest.raises(KeyError):
        store.finish_run(999_999, RunCounts())


BAD_ROWS = {
    "unknown kr": (MeasurementRecord(999_999, T0, T0, "ok", Decimal(1)), None),
    "value on a failure": (MeasurementRecord(0, T0, T0, "error", Decimal(0), "boom"), None),
    "ok without value": (MeasurementRecord(0, T0, T0, "ok", None), None),
    "unknown outcome": (MeasurementRecord(0, T0, T0, "maybe", None), None),
    "float value": (MeasurementRecord(0, T0, T0, "ok", 1.5), None),  # type: ignore[arg-type]
    "naive time": (MeasurementRecord(0, datetime(2026, 1, 1), T0, "ok", Decimal(1)), None),
    "unknown status": (None, EvaluationRecord(0, T0, "great")),
}


@pytest.mark.parametrize("bad", list(BAD_ROWS), ids=list(BAD_ROWS))
def test_record_results_is_all_or_nothing(
    store: Store, krs: dict[str, int], engine: sa.Engine, bad: str
) -> None:
    run_id = store.start_run(T0)
    measurements = [_ok(krs["a"], str(i), T0 + i * HOUR) for i in range(50)]
    evaluations = [_eval(krs["a"], T0 + i * HOUR) for i in range(50)]
    bad_measurement, bad_evaluation = BAD_ROWS[bad]
    if bad_measurement is not None:
        kr_id = bad_measurement.kr_id or krs["b"]
        measurements.insert(25, replace(bad_measurement, kr_id=kr_id))
    if bad_evaluation is not None:
        evaluations.insert(25, replace(bad_evaluation, kr_id=krs["b"]))
    with pytest.raises((sa.exc.SQLAlchemyError, TypeError, ValueError)):
        store.record_results(run_id, measurements, evaluations)
    assert _count(engine, Measurement) == 0
    assert _count(engine, Evaluation) == 0
    store.record_results(run_id, measurements[:25], evaluations[:25])  # the store still works
    assert _count(engine, Measurement) == 25


def test_history_returns_successful_values_in_order(store: Store, krs: dict[str, int]) -> None:
    a, b = krs["a"], krs["b"]
    run_id = store.start_run(T0)
    store.record_results(
        run_id,
        [
            # Fetched now, describing T0 + 2h (a backfill): history follows as_of.
            MeasurementRecord(a, datetime.now(UTC), T0 + 2 * HOUR, "ok", Decimal(3)),
            _ok(a, "0.1", T0),
            MeasurementRecord(a, T0 + HOUR, T0 + HOUR, "error", None, "timeout", "retriable"),
            MeasurementRecord(a, T0 + 3 * HOUR, T0 + 3 * HOUR, "no_data"),
            _ok(a, "12345678901234.123456789", T0 + 4 * HOUR),
            _ok(b, "7", T0 - 24 * HOUR),
        ],
        [],
    )
    assert store.history([a, b, 424242]) == {
        a: [(T0, Decimal("0.1")), (T0 + 2 * HOUR, Decimal(3)),
            (T0 + 4 * HOUR, Decimal("12345678901234.123456789"))],
        b: [(T0 - 24 * HOUR, Decimal(7))],
        424242: [],
    }  # fmt: skip
    assert store.history([a, b], since=T0 + HOUR) == {a: [(T0 + 2 * HOUR, Decimal(3)),
        (T0 + 4 * HOUR, Decimal("12345678901234.123456789"))], b: []}  # fmt: skip
    assert store.history([a], since=T0, until=T0 + 2 * HOUR)[a] == [
        (T0, Decimal("0.1")), (T0 + 2 * HOUR, Decimal(3)),
    ]  # fmt: skip


def test_history_chunks_long_id_lists(store: Store, krs: dict[str, int]) -> None:
    run_id = store.start_run(T0)
    store.record_results(run_id, [_ok(krs["b"], "1", T0)], [])
    ids = [*range(100_000, 102_500), krs["b"]]
    result = store.history(ids)
    assert len(result) == 2501
    assert result[krs["b"]] == [(T0, Decimal(1))]


def test_latest_status_shows_latest_and_last_good(store: Store, krs: dict[str, int]) -> None:
    a, b = krs["a"], krs["b"]
    first = store.start_run(T0)
    store.record_results(
        first,
        [_ok(a, "110", T0), _ok(b, "0.1", T0)],
        [
            _eval(a, T0, value=Decimal(110), progress=0.2, score=0.2, expected_progress=0.05),
            _eval(b, T0, value=Decimal("0.1"), progress=-0.1, score=0.0),
        ],
    )
    second = store.start_run(T0 + HOUR)
    store.record_results(
        second,
        [_ok(a, "125", T0 + HOUR),
         MeasurementRecord(b, T0 + HOUR, T0 + HOUR, "error", None, "HTTP 503 from api", "5xx")],
        [
            _eval(a, T0 + HOUR, Status.AT_RISK, value=Decimal(125), progress=0.5, score=0.5,
                  expected_progress=0.06, forecast_value=Decimal("140.5"), forecast_score=0.81,
                  reason="behind pace"),
            _eval(b, T0 + HOUR, Status.ERROR, reason="source failed"),
        ],
    )  # fmt: skip
    rows = {row.kr_key: row for row in store.latest_status()}
    assert list(rows) == ["a", "b", "never"]
    row_a, row_b, never = rows["a"], rows["b"], rows["never"]
    assert (row_a.status, row_a.value, row_a.progress, row_a.score) == (
        "at_risk", Decimal(125), 0.5, 0.5,
    )  # fmt: skip
    assert (row_a.expected_progress, row_a.forecast_value, row_a.forecast_score) == (
        0.06, Decimal("140.5"), 0.81,
    )  # fmt: skip
    assert (row_a.reason, row_a.measured_at, row_a.outcome) == ("behind pace", T0 + HOUR, "ok")
    assert (row_a.last_good_value, row_a.last_good_at) == (Decimal(125), T0 + HOUR)
    assert (row_a.objective_key, row_a.objective_title, row_a.owner, row_a.ref) == (
        "o", "Objective o", "o@example.com", "o/a",
    )  # fmt: skip
    assert (row_a.target, row_a.target_value, row_a.kind, row_a.weight) == (
        "150", Decimal(150), "increase", Decimal(1),
    )  # fmt: skip
    assert (row_b.status, row_b.value, row_b.score, row_b.outcome) == ("error", None, None, "error")
    assert row_b.error_message == "HTTP 503 from api"
    assert (row_b.last_good_value, row_b.last_good_at) == (Decimal("0.1"), T0)
    # Never measured: nothing is made up, least of all a 0.
    assert (never.status, never.value, never.measured_at, never.last_good_value) == (
        None, None, None, None,
    )  # fmt: skip
    assert (never.unit, never.reason) == ("%", "")
    assert store.latest_status(cycle="2026-Q4") == list(rows.values())
    assert store.latest_status(cycle="2025-Q1") == []
    measured = {k.kr_key: k for k in store.active_key_results()}
    assert (measured["b"].last_as_of, measured["b"].last_good_as_of) == (T0 + HOUR, T0)


def test_record_results_10000_rows_timing(store: Store, db_url: str, engine: sa.Engine) -> None:
    objectives = [objective(f"o{o}", [kr(f"k{k}") for k in range(10)]) for o in range(1000)]
    store.sync_definitions(okr_set(objectives))
    ids = [k.kr_id for k in store.active_key_results()]
    run_id = store.start_run(T0)
    measurements = [_ok(kr_id, f"{kr_id}.{kr_id}", T0) for kr_id in ids]
    evaluations = [
        _eval(kr_id, T0, value=Decimal(kr_id), progress=0.5, score=0.5, expected_progress=0.1,
              reason="on pace")
        for kr_id in ids
    ]  # fmt: skip
    started = time.perf_counter()
    store.record_results(run_id, measurements, evaluations)
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    rows = store.latest_status()
    status_elapsed = time.perf_counter() - started
    started = time.perf_counter()
    history = store.history(ids)
    history_elapsed = time.perf_counter() - started
    assert _count(engine, Measurement) == _count(engine, Evaluation) == 10_000
    assert len(rows) == 10_000 and all(row.status == "on_track" for row in rows)
    assert history[ids[-1]] == [(T0, Decimal(f"{ids[-1]}.{ids[-1]}"))]
    print(f"\n[{db_url.split(':')[0]}] record_results 10k measurements + 10k evaluations "
          f"{elapsed:.2f}s; latest_status 10k {status_elapsed:.2f}s; "
          f"history 10k {history_elapsed:.2f}s")  # fmt: skip


def test_forecast_band_is_stored_and_returned(store: Store, krs: dict[str, int]) -> None:
    a, b = krs["a"], krs["b"]
    run_id = store.start_run(T0)
    store.record_results(
        run_id,
        [_ok(a, "110", T0), _ok(b, "120", T0)],
        [
            _eval(a, T0, Status.OFF_TRACK, value=Decimal(110), forecast_value=Decimal("130.5"),
                  forecast_low=Decimal("120.125"), forecast_high=Decimal("141.000000001")),
            _eval(b, T0, value=Decimal(120)),  # no forecast: no band
        ],
    )  # fmt: skip
    rows = {row.kr_key: row for row in store.latest_status()}
    assert (rows["a"].forecast_low, rows["a"].forecast_value, rows["a"].forecast_high) == (
        Decimal("120.125"), Decimal("130.5"), Decimal("141.000000001"),
    )  # fmt: skip
    assert (rows["b"].forecast_low, rows["b"].forecast_high) == (None, None)
    assert (rows["never"].forecast_low, rows["never"].forecast_high) == (None, None)
    with pytest.raises((sa.exc.SQLAlchemyError, TypeError)):
        store.record_results(run_id, [], [_eval(a, T0, forecast_low=1.5)])  # type: ignore[arg-type]


def test_active_key_results_of_some_krs(store: Store) -> None:
    # A shard reads only its KRs; past 1,000 ids SQLite takes them in several IN lists,
    # and the rows still come in the order of the full list.
    many = [kr(f"k{i:04d}") for i in range(1205)]
    store.sync_definitions(okr_set([objective("b", many[600:]), objective("a", many[:600])]))
    everything = store.active_key_results()
    wanted = {k.kr_id for k in everything[::2]} | {k.kr_id for k in everything[-3:]}
    some = store.active_key_results(kr_ids=[*wanted, 999_999])  # unknown: ignored
    assert some == [k for k in everything if k.kr_id in wanted]
    assert len(some) == len(wanted) > 600
    assert store.active_key_results(kr_ids=[]) == []
