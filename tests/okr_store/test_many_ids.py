"""Reads by KR id over more ids than one IN list holds: the same rows on every backend.

PostgreSQL takes the ids as one array (``= ANY``); SQLite as IN lists of ``IN_CHUNK``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from okr_pipeline.okr_core.alerting.model import AlertState
from okr_pipeline.okr_store.queries import IN_CHUNK
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord
from okr_pipeline.okr_store.store import Store
from tests.okr_store.conftest import kr, objective, okr_set

KRS = IN_CHUNK + 200
AS_OF = datetime(2026, 11, 2, tzinfo=UTC)


def _measured(store: Store) -> list[int]:
    objectives = [
        objective(f"o{o}", [kr(f"k{i}") for i in range(o, o + 5)]) for o in range(0, KRS, 5)
    ]
    store.sync_definitions(okr_set(objectives))
    ids = [k.kr_id for k in store.active_key_results()]
    run = store.start_run(AS_OF)
    # Every third KR failed: no good value, so history and last_good leave it out.
    measurements = [
        MeasurementRecord(
            kr_id=kr_id,
            measured_at=AS_OF,
            as_of=AS_OF - timedelta(days=1),
            value=None if n % 3 == 0 else Decimal(n),
            outcome="error" if n % 3 == 0 else "ok",
            error_message="down" if n % 3 == 0 else None,
        )
        for n, kr_id in enumerate(ids)
    ]
    evaluations = [
        EvaluationRecord(kr_id=kr_id, evaluated_at=AS_OF - timedelta(days=1), status="no_data")
        for kr_id in ids
    ]
    store.record_results(run, measurements, evaluations)
    return ids


def test_reads_over_many_ids(store: Store) -> None:
    ids = _measured(store)
    assert len(ids) == KRS
    good = [kr_id for n, kr_id in enumerate(ids) if n % 3]
    wanted = ids[1:]  # all but one: the reads must not return more than asked

    history = store.history(wanted, before=AS_OF)
    assert sorted(history) == sorted(wanted)
    assert sorted(k for k, points in history.items() if points) == sorted(set(good) - {ids[0]})
    assert all(len(points) == 1 for points in history.values() if points)

    last = store.last_good_before(wanted, AS_OF)
    assert sorted(last) == sorted(set(good) - {ids[0]})
    assert set(last.values()) == {AS_OF - timedelta(days=1)}

    rows = store.measurements(wanted, at=AS_OF - timedelta(days=1))
    assert [m.kr_id for m in rows] == sorted(wanted)
    times = store.evaluation_times(wanted, at=AS_OF - timedelta(days=1))
    assert [kr_id for kr_id, _, _ in times] == sorted(wanted)

    assert store.history([], before=AS_OF) == {}
    assert store.last_good_before([], AS_OF) == {}


def test_alert_states_over_many_ids(store: Store) -> None:
    ids = _measured(store)
    states = {
        (kr_id, "off_track"): AlertState(
            kr_id=kr_id, kind="off_track", phase="pending", active_count=1, active_since=AS_OF
        )
        for kr_id in ids[::2]
    }
    store.apply_alert_step(states, [], [])
    read = store.alert_states(ids[1:])
    assert sorted(read) == sorted(key for key in states if key[0] != ids[0])
    assert store.alert_states([]) == {}


def test_a_rerun_replaces_rows_over_many_ids(store: Store) -> None:
    ids = _measured(store)
    run = store.start_run(AS_OF)
    again = [
        MeasurementRecord(
            kr_id=kr_id,
            measured_at=AS_OF,
            as_of=AS_OF - timedelta(days=1),
            value=Decimal(7),
            outcome="ok",
        )
        for kr_id in ids
    ]
    store.record_results(run, again, [])
    rows = store.measurements(ids, at=AS_OF - timedelta(days=1))
    assert len(rows) == KRS and {m.value for m in rows} == {Decimal(7)}
    assert {m.run_id for m in rows} == {run}
