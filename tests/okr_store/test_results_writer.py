"""``Store.writing_results``: a run's rows written while it evaluates, still all or nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.scoring import Status
from okr_pipeline.okr_store.models import Evaluation, Measurement, SupersededMeasurement
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord
from okr_pipeline.okr_store.store import Store

from .conftest import kr, objective, okr_set
from .test_runs import BAD_ROWS

T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def krs(store: Store) -> dict[str, int]:
    store.sync_definitions(okr_set([objective("o", [kr("a"), kr("b")])]))
    return {k.kr_key: k.kr_id for k in store.active_key_results()}


def _ok(kr_id: int, value: str, at: datetime) -> MeasurementRecord:
    return MeasurementRecord(kr_id, measured_at=at, as_of=at, outcome="ok", value=Decimal(value))


def _eval(kr_id: int, at: datetime, value: str = "1") -> EvaluationRecord:
    return EvaluationRecord(kr_id, at, Status.ON_TRACK, value=Decimal(value), score=0.5)


def _rows(engine: sa.Engine, model: type) -> list[tuple[object, ...]]:
    table = model.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        query = sa.select(*(c for c in table.c if c.name != "id")).order_by(*table.c)
        return [tuple(row) for row in conn.execute(query)]


def test_rows_are_those_record_results_stores(
    store: Store, krs: dict[str, int], engine: sa.Engine
) -> None:
    run_id = store.start_run(T0)
    measurements = [_ok(krs["a"], str(i), T0 + i * HOUR) for i in range(30)]
    evaluations = [_eval(krs["a"], T0 + i * HOUR, str(i)) for i in range(30)]
    with store.writing_results(run_id, measurements) as write:
        for start in range(0, 30, 7):
            write(evaluations[start : start + 7])
    written = (_rows(engine, Measurement), _rows(engine, Evaluation))
    with engine.begin() as conn:
        conn.execute(sa.delete(Measurement.__table__))
        conn.execute(sa.delete(Evaluation.__table__))
    store.record_results(run_id, measurements, evaluations)
    assert written == (_rows(engine, Measurement), _rows(engine, Evaluation))
    assert len(written[0]) == len(written[1]) == 30


def test_nothing_is_visible_before_the_block_ends(
    store: Store, krs: dict[str, int], engine: sa.Engine
) -> None:
    run_id = store.start_run(T0)
    with store.writing_results(run_id, [_ok(krs["a"], "1", T0)]) as write:
        write([_eval(krs["a"], T0)])
        assert _rows(engine, Measurement) == _rows(engine, Evaluation) == []
    assert len(_rows(engine, Measurement)) == len(_rows(engine, Evaluation)) == 1


@pytest.mark.parametrize("bad", list(BAD_ROWS), ids=list(BAD_ROWS))
def test_a_bad_row_in_any_batch_stores_nothing(
    store: Store, krs: dict[str, int], engine: sa.Engine, bad: str
) -> None:
    run_id = store.start_run(T0)
    measurements = [_ok(krs["a"], str(i), T0 + i * HOUR) for i in range(20)]
    evaluations = [_eval(krs["a"], T0 + i * HOUR) for i in range(20)]
    bad_measurement, bad_evaluation = BAD_ROWS[bad]
    if bad_measurement is not None:
        measurements.append(replace(bad_measurement, kr_id=bad_measurement.kr_id or krs["b"]))
    if bad_evaluation is not None:
        evaluations.append(replace(bad_evaluation, kr_id=krs["b"]))  # in the last batch
    with (
        pytest.raises((sa.exc.SQLAlchemyError, TypeError, ValueError)),
        store.writing_results(run_id, measurements) as write,
    ):
        for start in range(0, len(evaluations), 10):
            write(evaluations[start : start + 10])
    assert _rows(engine, Measurement) == _rows(engine, Evaluation) == []
    with store.writing_results(run_id, measurements[:5]) as write:  # the store still works
        write(evaluations[:5])
    assert len(_rows(engine, Measurement)) == 5


def test_an_error_in_the_block_stores_nothing(
    store: Store, krs: dict[str, int], engine: sa.Engine
) -> None:
    run_id = store.start_run(T0)
    with (
        pytest.raises(RuntimeError, match="scoring failed"),
        store.writing_results(run_id, [_ok(krs["a"], "1", T0)]) as write,
    ):
        write([_eval(krs["a"], T0)])
        raise RuntimeError("scoring failed")
    assert _rows(engine, Measurement) == _rows(engine, Evaluation) == []


def test_a_row_stored_meanwhile_is_replaced(
    store: Store, krs: dict[str, int], engine: sa.Engine
) -> None:
    # The run read no row at T0 for KR a (replacing is empty), but another writer stored
    # one since: the unique key refuses the insert and the rows are written again,
    # replacing it.
    earlier = store.start_run(T0)
    store.record_results(earlier, [_ok(krs["a"], "1", T0)], [_eval(krs["a"], T0, "1")])
    run_id = store.start_run(T0)
    with store.writing_results(run_id, [_ok(krs["a"], "2", T0)], replacing=set()) as write:
        write([_eval(krs["a"], T0, "2")])
    [measurement] = _rows(engine, Measurement)
    [evaluation] = _rows(engine, Evaluation)
    assert Decimal(2) in measurement and Decimal(2) in evaluation
    assert run_id in measurement
    assert len(_rows(engine, SupersededMeasurement)) == 1
