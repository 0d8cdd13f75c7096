"""Synchronising definitions: by id, in place, archive instead of delete."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from okr_pipeline.okr_core.alerting.model import AlertPolicy, AlertPolicyOverride
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_store.models import KeyResult, Measurement, Objective
from okr_pipeline.okr_store.records import MeasurementRecord, SyncResult
from okr_pipeline.okr_store.store import Store

from .conftest import kr, objective, okr_set

T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)


def _measure(store: Store, kr_id: int, value: str, at: datetime = T0) -> None:
    run_id = store.start_run(at)
    store.record_results(run_id, [MeasurementRecord(kr_id, at, at, "ok", Decimal(value))], [])


def _ids(store: Store) -> dict[str, int]:
    return {k.ref: k.kr_id for k in store.active_key_results()}


def _base() -> list[dict]:  # type: ignore[type-arg]
    return [
        objective("growth", [kr("signups"), kr("churn", baseline=5, target=3)]),
        objective("ops", [kr("uptime", kind="at_least", baseline=None, target="99.5", floor=95)],
                  type="committed", parent="growth"),
    ]  # fmt: skip


def test_first_sync_adds_everything(store: Store) -> None:
    assert store.definitions_fingerprint() is None
    result = store.sync_definitions(okr_set(_base()))
    assert result == SyncResult(added=3, objectives_added=2)
    assert store.definitions_fingerprint() == "fp-1"
    krs = {k.ref: k for k in store.active_key_results()}
    assert sorted(krs) == ["growth/churn", "growth/signups", "ops/uptime"]
    churn, uptime = krs["growth/churn"], krs["ops/uptime"]
    assert (churn.kind, churn.baseline, churn.target, churn.target_value) == (
        "decrease", Decimal(5), "3", Decimal(3),
    )  # fmt: skip
    assert (churn.objective_type, churn.success_level, churn.owner) == (
        "aspirational", 0.7, "growth@example.com",
    )  # fmt: skip
    assert (uptime.kind, uptime.floor, uptime.success_level) == ("at_least", Decimal(95), 1.0)
    assert churn.source == {"connection": "warehouse", "query": "SELECT 5", "type": "sql"}
    assert churn.source_type == "sql"
    assert churn.schedule == "0 * * * *"
    assert churn.cycle == "2026-Q4"
    assert churn.last_as_of is None and churn.last_good_as_of is None


def test_same_definitions_are_unchanged(store: Store) -> None:
    store.sync_definitions(okr_set(_base()))
    result = store.sync_definitions(okr_set(_base(), fingerprint="fp-2"))
    assert result == SyncResult(unchanged=3)
    assert not result.changed
    assert store.definitions_fingerprint() == "fp-2"


def test_edit_updates_in_place_and_keeps_history(store: Store) -> None:
    store.sync_definitions(okr_set(_base()))
    before = _ids(store)
    _measure(store, before["growth/signups"], "120")
    edited = _base()
    edited[0]["key_results"][0]["title"] = "Weekly signups"
    edited[0]["key_results"][0]["target"] = 200
    edited[0]["title"] = "Grow faster"
    result = store.sync_definitions(okr_set(edited))
    assert result == SyncResult(updated=1, unchanged=2, objectives_updated=1)
    krs = {k.ref: k for k in store.active_key_results()}
    assert _ids(store) == before
    assert krs["growth/signups"].title == "Weekly signups"
    assert krs["growth/signups"].target_value == Decimal(200)
    assert krs["growth/signups"].last_good_as_of == T0
    signups = before["growth/signups"]
    assert store.history([signups]) == {signups: [(T0, Decimal(120))]}


def test_removed_kr_is_archived_and_restored(store: Store, engine: sa.Engine) -> None:
    store.sync_definitions(okr_set(_base()))
    churn_id = _ids(store)["growth/churn"]
    _measure(store, churn_id, "4.5")
    without = _base()
    del without[0]["key_results"][1]
    assert store.sync_definitions(okr_set(without)) == SyncResult(archived=1, unchanged=2)
    assert "growth/churn" not in _ids(store)
    assert "churn" not in {row.kr_key for row in store.latest_status()}
    with engine.connect() as conn:
        stmt = sa.select(KeyResult.archived_at).where(KeyResult.id == churn_id)
        assert conn.execute(stmt).scalar() is not None
        assert conn.execute(sa.select(sa.func.count()).select_from(Measurement)).scalar() == 1
    assert store.history([churn_id])[churn_id] == [(T0, Decimal("4.5"))]

    result = store.sync_definitions(okr_set(_base()))
    assert result == SyncResult(updated=1, restored=1, unchanged=2)
    assert _ids(store)["growth/churn"] == churn_id
    assert store.active_key_results()[0].last_good_as_of == T0


def test_removed_objective_is_archived_and_restored(store: Store, engine: sa.Engine) -> None:
    store.sync_definitions(okr_set(_base()))
    result = store.sync_definitions(okr_set(_base()[:1]))
    assert result == SyncResult(archived=1, unchanged=2, objectives_archived=1)
    assert sorted(_ids(store)) == ["growth/churn", "growth/signups"]
    with engine.connect() as conn:
        archived = (
            conn.execute(sa.select(Objective.key).where(Objective.archived_at.is_not(None)))
            .scalars()
            .all()
        )
    assert archived == ["ops"]
    result = store.sync_definitions(okr_set(_base()))
    assert result == SyncResult(updated=1, restored=1, unchanged=2, objectives_updated=1)
    assert len(_ids(store)) == 3


def test_kr_moved_to_another_objective_is_a_new_kr(store: Store) -> None:
    # Identity is (cycle, objective, kr): the same KR id under another objective is another KR.
    store.sync_definitions(okr_set(_base()))
    moved = _base()
    moved[1]["key_results"].append(moved[0]["key_results"].pop(0))
    result = store.sync_definitions(okr_set(moved))
    assert (result.added, result.archived) == (1, 1)
    assert "ops/signups" in _ids(store)


def test_auto_baseline_is_set_once_and_survives_edits(store: Store) -> None:
    auto = kr("listeners", baseline="auto", target="+20%")
    store.sync_definitions(okr_set([objective("o", [auto])]))
    (listeners,) = store.active_key_results()
    assert listeners.baseline_auto
    assert (listeners.baseline, listeners.target_value) == (None, None)
    assert store.set_auto_baseline(listeners.kr_id, Decimal("250")) is True
    assert store.set_auto_baseline(listeners.kr_id, Decimal("999")) is False
    (listeners,) = store.active_key_results()
    assert (listeners.baseline, listeners.target_value) == (Decimal(250), Decimal(300))

    edited = [objective("o", [kr("listeners", baseline="auto", target="+10%", title="New")])]
    assert store.sync_definitions(okr_set(edited)).updated == 1
    (listeners,) = store.active_key_results()
    assert (listeners.baseline, listeners.target_value) == (Decimal(250), Decimal(275))


def test_set_auto_baseline_refuses_declared_baselines(store: Store) -> None:
    store.sync_definitions(okr_set(_base()))
    with pytest.raises(ValueError, match="not 'auto'"):
        store.set_auto_baseline(_ids(store)["growth/churn"], Decimal(1))
    with pytest.raises(KeyError):
        store.set_auto_baseline(999_999, Decimal(1))


def test_milestone_target_is_one(store: Store) -> None:
    milestone = kr("launch", kind="milestone", baseline=None, target=None)
    store.sync_definitions(okr_set([objective("o", [milestone])]))
    (launch,) = store.active_key_results()
    assert (launch.kind, launch.target, launch.target_value) == ("milestone", None, Decimal(1))


def test_conflicting_cycle_declarations_are_refused(store: Store) -> None:
    from pathlib import Path

    from okr_pipeline.okr_core.definitions import OkrFileDef
    from okr_pipeline.okr_core.loader import LoadedFile, OkrSet

    def file(end: str, key: str) -> LoadedFile:
        cycle = {"name": "Q", "start": "2026-10-01", "end": end}
        data = {"cycle": cycle, "objectives": [objective(key, [kr("a")])]}
        definition = OkrFileDef.model_validate(data)
        return LoadedFile(Path(f"{key}.yaml"), definition)

    bad = OkrSet(files=[file("2026-12-31", "a"), file("2026-11-30", "b")], fingerprint="x")
    with pytest.raises(ConfigError, match="cycle 'Q' is declared twice"):
        store.sync_definitions(bad)
    assert store.active_key_results() == []


def test_sync_of_10000_krs_is_bulk(store: Store, engine: sa.Engine, db_url: str) -> None:
    objectives = [
        objective(f"obj-{o}", [kr(f"kr-{k}", source={"type": "sql", "query": f"SELECT {o}{k}"})
                               for k in range(5)])
        for o in range(2000)
    ]  # fmt: skip
    first = okr_set(objectives)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])  # (conn, cursor, statement, ...)

    event.listen(engine, "before_cursor_execute", count)
    try:
        started = time.perf_counter()
        assert store.sync_definitions(first).added == 10_000
        added = time.perf_counter() - started
        for obj in objectives[::2]:
            obj["key_results"][0]["title"] += " (edited)"
        started = time.perf_counter()
        result = store.sync_definitions(okr_set(objectives[:-200]))
        edited = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert (result.updated, result.archived, result.unchanged) == (900, 1000, 8100)
    # Each sync is a fixed handful of statements: no per-row SELECT or UPDATE.
    assert len(statements) < 40, statements[:50]
    started = time.perf_counter()
    assert len(store.active_key_results()) == 9000
    listed = time.perf_counter() - started
    backend = db_url.split(":")[0]
    print(f"\n[{backend}] sync 10k new {added:.2f}s, 900 edited + 1000 archived "
          f"{edited:.2f}s, active_key_results 9k {listed:.2f}s, "
          f"{len(statements)} statements")  # fmt: skip


def test_cycle_dates_follow_the_definitions(store: Store) -> None:
    store.sync_definitions(okr_set(_base()))
    moved = {"name": "2026-Q4", "start": "2026-10-01", "end": "2027-01-15", "timezone": "UTC"}
    result = store.sync_definitions(okr_set(_base(), cycle=moved))
    assert result == SyncResult(unchanged=3)  # the KRs themselves did not change
    (first, *_) = store.active_key_results()
    assert (first.cycle_start, first.cycle_end) == (
        datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 16, tzinfo=UTC),
    )  # fmt: skip


def test_alert_policy_is_stored_and_round_trips(store: Store) -> None:
    alerts = {"pending_for": "6h", "repeat_interval": "1d", "enabled": False, "no_data": "alert"}
    store.sync_definitions(okr_set([objective("o", [kr("a", alerts=alerts), kr("b")])]))
    krs = {k.kr_key: k for k in store.active_key_results()}
    assert krs["b"].alert_policy is None
    stored = krs["a"].alert_policy
    assert stored == {
        "pending_for": "PT6H", "repeat_interval": "P1D", "enabled": False, "no_data": "alert",
    }  # fmt: skip
    assert AlertPolicyOverride.model_validate(stored) == AlertPolicyOverride.model_validate(alerts)
    applied = AlertPolicyOverride.model_validate(stored).apply(AlertPolicy())
    assert (applied.pending_for, applied.repeat_interval) == (timedelta(hours=6), timedelta(1))
    assert (applied.enabled, applied.pending_evaluations) == (False, 2)


def test_editing_alerts_updates_the_kr(store: Store, engine: sa.Engine) -> None:
    def sync(**alerts: Any) -> SyncResult:
        krs = [kr("a", **({"alerts": alerts} if alerts else {}))]
        return store.sync_definitions(okr_set([objective("o", krs)]))

    def stored() -> tuple[Any, str]:
        with engine.connect() as conn:
            row = conn.execute(sa.select(KeyResult.alert_policy, KeyResult.definition_hash)).one()
        return row.alert_policy, row.definition_hash

    sync()
    _, plain_hash = stored()
    assert sync(pending_evaluations=3) == SyncResult(updated=1)
    policy, hash_3 = stored()
    assert policy == {"pending_evaluations": 3} and hash_3 != plain_hash
    assert sync(pending_evaluations=3) == SyncResult(unchanged=1)
    assert sync(pending_evaluations=4) == SyncResult(updated=1)
    assert stored()[0] == {"pending_evaluations": 4}
    assert sync(pending_evaluations=4, repeat_interval="2d") == SyncResult(updated=1)
    assert stored()[0] == {"pending_evaluations": 4, "repeat_interval": "P2D"}
    # Removing `alerts:` clears it (SQL NULL, not JSON null) and restores the plain hash.
    assert sync() == SyncResult(updated=1)
    assert stored() == (None, plain_hash)
    with engine.connect() as conn:
        nulls = conn.execute(
            sa.select(sa.func.count()).where(KeyResult.alert_policy.is_(None))
        ).scalar_one()
    assert nulls == 1


def test_definition_hashes_never_change() -> None:
    """Stored hashes decide what a sync counts as edited: a new hash would edit every KR."""
    from datetime import date

    from okr_pipeline.okr_store.sync import kr_definition_hash

    http = {"type": "http", "url": "https://x/é?d=1", "extract": {"path": "a.b"}}
    krs = okr_set([objective("g", [
        kr("a"),
        kr("b", baseline="auto", target="+20%", unit="%", schedule="0 9 * * 1"),
        kr("c", kind="milestone", baseline=None, target=None,
           alerts={"pending_for": "2h", "repeat_interval": "1d"}),
        kr("d", kind="at_least", baseline=None, target="99.5", floor=95, weight=2,
           source={**http, "when": date(2026, 1, 2), "n": 1.5, "flag": True}),
    ])])  # fmt: skip
    assert {k.id: kr_definition_hash(k) for _, _, k in krs.key_results()} == {
        "a": "ffa31c3e9e359f1cab3cca28a7d9b8419b1a40291cb0169129b5eaa1dc0aa42f",
        "b": "66d3c54f815a9daa285870c87261195b4a2563d6830dc5949164b7ec82afc309",
        "c": "becae9304f6fcbeb80526ac536f26c4f27fb75dca5897c0b1c43129eac26411c",
        "d": "f78d02d90ec4984d67de0f60ae1bafe1f8bc126b0321f42d6f37df5063b00c14",
    }
