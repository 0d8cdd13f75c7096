"""A run's values scored and stored as they arrive: the same rows, still all or nothing.

Against both stores: on PostgreSQL a writer thread writes each chunk in the run's
transaction while the run goes on; on SQLite everything is written at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.errors import StoreUnavailableError
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.records import StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run import recorder as recorder_module
from okr_pipeline.run.fetch import FetchResult
from okr_pipeline.run.recorder import RunRecorder, store_results
from okr_pipeline.run.spool import pending_spools
from tests.okr_store.conftest import kr, objective, okr_set

AS_OF = datetime(2026, 11, 2, 9, tzinfo=UTC)
KRS = 7


@pytest.fixture(params=["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    store.sync_definitions(okr_set([objective("o", [kr(f"k{i}") for i in range(KRS)])]))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    return Settings(project_dir=tmp_path, store_url=store_url)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_module, "EVALUATE_CHUNK", 2)


def _krs(store: Store) -> dict[int, StoredKeyResult]:
    return {k.kr_id: k for k in store.active_key_results(AS_OF)}


def _results(krs: dict[int, StoredKeyResult]) -> list[FetchResult]:
    return [
        FetchResult(kr_id, AS_OF - timedelta(seconds=1), value=Decimal(n * 10))
        for n, kr_id in enumerate(krs)
    ]


def _stored(store: Store) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        measurements = conn.execute(
            sa.text("SELECT kr_id, as_of, value, outcome FROM measurements ORDER BY kr_id")
        )
        evaluations = conn.execute(
            sa.text(
                "SELECT kr_id, evaluated_at, value, progress, score, status FROM evaluations "
                "ORDER BY kr_id"
            )
        )
        return [tuple(r) for r in measurements], [tuple(r) for r in evaluations]


def _clear(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM evaluations"))
        conn.execute(sa.text("DELETE FROM measurements"))


def test_rows_added_as_they_come_are_those_stored_at_once(store: Store, settings: Settings) -> None:
    krs = _krs(store)
    results = _results(krs)
    run_id = store.start_run(AS_OF)
    with RunRecorder(store, settings, krs, run_id=run_id, as_of=AS_OF, flow_run_id=None) as rec:
        # Batches of uneven sizes, as lanes finish them; the last two come only at the end
        # (as a manual KR's check-in or a formula would).
        for batch in (results[0:1], results[1:4], results[4:5]):
            rec.add(batch)
        streamed = rec.finish(list(reversed(results)))
    assert [e.kr_id for e in streamed] == [r.kr_id for r in reversed(results)]
    rows = _stored(store)
    assert len(rows[0]) == len(rows[1]) == KRS

    _clear(store)
    at_once = store_results(store, settings, krs, results, run_id=run_id, as_of=AS_OF,
                            flow_run_id=None)  # fmt: skip
    assert _stored(store) == rows
    assert sorted(at_once, key=lambda e: e.kr_id) == sorted(streamed, key=lambda e: e.kr_id)


def test_a_run_stopped_before_finish_stores_nothing(store: Store, settings: Settings) -> None:
    krs = _krs(store)
    results = _results(krs)
    run_id = store.start_run(AS_OF)
    with (
        pytest.raises(KeyboardInterrupt),
        RunRecorder(store, settings, krs, run_id=run_id, as_of=AS_OF, flow_run_id=None) as rec,
    ):
        rec.add(results[:5])  # two chunks scored and handed to the writer
        raise KeyboardInterrupt
    assert _stored(store) == ([], [])
    # The store is not left locked or in a transaction: a run goes on as usual.
    store_results(store, settings, krs, results, run_id=run_id, as_of=AS_OF, flow_run_id=None)
    assert len(_stored(store)[0]) == KRS


def test_a_store_failing_mid_fetch_keeps_every_value(
    store: Store, settings: Settings, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    krs = _krs(store)
    results = _results(krs)
    run_id = store.start_run(AS_OF)
    reads = []

    def history(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        if len(reads) == 2:
            raise sa.exc.OperationalError("SELECT", {}, Exception("server closed the connection"))
        return Store.history(store, *args, **kwargs)

    monkeypatch.setattr(store, "history", history)
    with (
        pytest.raises(StoreUnavailableError, match="Nothing was lost: the 7 values fetched"),
        RunRecorder(store, settings, krs, run_id=run_id, as_of=AS_OF, flow_run_id="f-1") as rec,
    ):
        rec.add(results[:2])  # scored and written
        rec.add(results[2:4])  # the store fails: nothing more is scored
        rec.add(results[4:6])  # still kept
        rec.finish(results)
    assert len(reads) == 2
    assert _stored(store) == ([], [])  # the first chunk's rows were rolled back
    (spooled,) = pending_spools(settings.project_dir, store_url)
    assert sorted(m.kr_id for m in spooled.measurements) == sorted(krs)
    assert spooled.flow_run_id == "f-1"


def test_a_dry_run_scores_and_stores_nothing_nor_spools(
    store: Store, settings: Settings, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    krs = _krs(store)
    results = _results(krs)
    with RunRecorder(store, settings, krs, run_id=None, as_of=AS_OF, flow_run_id=None) as rec:
        rec.add(results[:3])
        evaluations = rec.finish(results)
    assert [e.kr_id for e in evaluations] == [r.kr_id for r in results]
    assert {e.status for e in evaluations} - {"on_track", "at_risk", "off_track"} == set()
    assert _stored(store) == ([], [])

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise sa.exc.OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store, "history", broken)
    with (
        pytest.raises(sa.exc.OperationalError),
        RunRecorder(store, settings, krs, run_id=None, as_of=AS_OF, flow_run_id=None) as rec,
    ):
        rec.finish(results)
    assert list(pending_spools(settings.project_dir, store_url)) == []
