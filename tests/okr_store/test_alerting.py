"""Alerting persistence: alert states, alert records, silences, KR history."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.alerting.model import AlertRecord, AlertState, Silence
from okr_pipeline.okr_store.models import Alert
from okr_pipeline.okr_store.models import AlertState as AlertStateRow
from okr_pipeline.okr_store.records import MeasurementRecord, MeasurementRow
from okr_pipeline.okr_store.store import Store

from .conftest import kr, objective, okr_set

T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def krs(store: Store) -> dict[str, int]:
    store.sync_definitions(okr_set([objective("o", [kr("a"), kr("b")]), objective("p", [kr("a")])]))
    return {k.ref: k.kr_id for k in store.active_key_results()}


def _count(engine: sa.Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


def _state(kr_id: int, kind: Any = "off_track", **kw: Any) -> AlertState:
    values: dict[str, Any] = {"phase": "pending", "active_count": 1, "active_since": T0}
    values.update(kw)
    return AlertState(kr_id=kr_id, kind=kind, **values)


def _record(kr_id: int, at: datetime = T0, **kw: Any) -> AlertRecord:
    values: dict[str, Any] = {
        "kind": "off_track", "transition": "firing", "route": "podcasts",
        "channel": "json://hooks.example.com", "delivery": "sent",
        "payload": {"status": "off_track", "value": Decimal("12.50")}, "created_at": at,
    }  # fmt: skip
    values.update(kw)
    return AlertRecord(kr_id=kr_id, **values)


# -- alert states and records ------------------------------------------------------------


def test_apply_alert_step_upserts_deletes_and_inserts(
    store: Store, krs: dict[str, int], engine: sa.Engine
) -> None:
    a, b, pa = krs["o/a"], krs["o/b"], krs["p/a"]
    assert store.alert_states() == {}
    first = {
        (a, "off_track"): _state(a),
        (a, "stale"): _state(a, "stale", active_count=3),
        (b, "source_failing"): _state(b, "source_failing"),
    }
    store.apply_alert_step(first, [], [])
    assert store.alert_states() == first

    run_id = store.start_run(T0 + HOUR)
    fired = _state(a, phase="firing", active_count=2, fired_at=T0 + HOUR, last_sent_at=T0 + HOUR)
    records = [_record(a, T0 + HOUR, run_id=run_id), _record(b, T0 + HOUR, kind="source_failing",
               transition="resolved", delivery="failed", error="HTTP 500", channel="")]  # fmt: skip
    store.apply_alert_step(
        {(a, "off_track"): fired, (pa, "stale"): _state(pa, "stale")},
        [(b, "source_failing"), (b, "stale")],  # the second is not stored: ignored
        records,
    )
    assert store.alert_states() == {
        (a, "off_track"): fired,  # updated in place
        (a, "stale"): first[(a, "stale")],  # untouched
        (pa, "stale"): _state(pa, "stale"),  # inserted
    }
    assert store.alert_states([a]) == {
        (a, "off_track"): fired, (a, "stale"): first[(a, "stale")],
    }  # fmt: skip
    assert store.alert_states([b, 424242]) == {}
    assert store.alert_states([]) == {}
    state = store.alert_states()[(a, "off_track")]
    assert state.fired_at == T0 + HOUR and state.fired_at.tzinfo == UTC
    assert _count(engine, Alert) == 2


def test_apply_alert_step_batches_many_keys(store: Store, engine: sa.Engine) -> None:
    store.sync_definitions(okr_set([objective(f"o{i}", [kr("k")]) for i in range(1200)]))
    ids = [k.kr_id for k in store.active_key_results()]
    states = {(kr_id, "off_track"): _state(kr_id) for kr_id in ids}
    store.apply_alert_step(states, [], [_record(kr_id) for kr_id in ids])
    assert len(store.alert_states(ids)) == 1200
    store.apply_alert_step({}, list(states), [])
    assert store.alert_states() == {}
    assert _count(engine, Alert) == 1200


BAD_STEPS: dict[str, dict[str, Any]] = {
    "unknown kr in a record": {"record": {"kr_id": 999_999}},
    "unknown run": {"record": {"run_id": 999_999}},
    "naive record time": {"record": {"created_at": datetime(2026, 10, 5, 9)}},
    "unknown delivery": {"record": {"delivery": "carrier-pigeon"}},
    "unknown transition": {"record": {"transition": "exploded"}},
    "payload not JSON": {"record": {"payload": {"x": object()}}},
    "payload NaN": {"record": {"payload": {"x": float("nan")}}},
    "unknown kind in a state": {"state": {"kind": "grumpy"}},
    "unknown phase": {"state": {"phase": "smouldering"}},
    "naive state time": {"state": {"active_since": datetime(2026, 10, 5, 9)}},
    "state under another key": {"key": (0, "stale")},
    "both updated and cleared": {"clear_new": True},
}


@pytest.mark.parametrize("bad", list(BAD_STEPS), ids=list(BAD_STEPS))
def test_apply_alert_step_is_all_or_nothing(
    store: Store, krs: dict[str, int], engine: sa.Engine, bad: str
) -> None:
    a, b = krs["o/a"], krs["o/b"]
    before = {(a, "stale"): _state(a, "stale"), (b, "stale"): _state(b, "stale")}
    store.apply_alert_step(before, [], [])
    spec = BAD_STEPS[bad]
    new_key = (b, "off_track")
    new_state = replace(_state(b), **spec.get("state", {}))
    key = spec.get("key", new_key)
    key = (a if key[0] == 0 else key[0], key[1])
    records = [_record(a) for _ in range(30)]
    records.insert(15, replace(_record(b), **spec.get("record", {})))
    cleared = [(a, "stale"), *([key] if spec.get("clear_new") else [])]
    with pytest.raises((sa.exc.SQLAlchemyError, TypeError, ValueError)):
        store.apply_alert_step({key: new_state}, cleared, records)
    assert store.alert_states() == before  # nothing upserted, nothing deleted
    assert _count(engine, Alert) == 0
    store.apply_alert_step({new_key: _state(b)}, [(a, "stale")], records[:15])  # still works
    assert set(store.alert_states()) == {(b, "stale"), new_key}
    assert _count(engine, Alert) == 15


def test_recent_alerts_newest_first_and_by_ref(store: Store, krs: dict[str, int]) -> None:
    a, b, pa = krs["o/a"], krs["o/b"], krs["p/a"]
    run_id = store.start_run(T0)
    store.apply_alert_step({}, [], [
        _record(a, T0, run_id=run_id),
        _record(b, T0 + 2 * HOUR, kind="stale", delivery="silenced", channel=""),
        _record(pa, T0 + HOUR, transition="repeat", delivery="failed", error="timeout"),
        _record(a, T0 + 3 * HOUR, transition="resolved", delivery="dry_run"),
    ])  # fmt: skip
    rows = store.recent_alerts()
    assert [(r.ref, r.created_at) for r in rows] == [
        ("o/a", T0 + 3 * HOUR), ("o/b", T0 + 2 * HOUR), ("p/a", T0 + HOUR), ("o/a", T0),
    ]  # fmt: skip
    oldest = rows[-1]
    assert (oldest.run_id, oldest.kind, oldest.transition, oldest.route, oldest.channel) == (
        run_id, "off_track", "firing", "podcasts", "json://hooks.example.com",
    )  # fmt: skip
    assert (oldest.delivery, oldest.error) == ("sent", None)
    # Decimals in a payload are kept exact, as text.
    assert oldest.payload == {"status": "off_track", "value": "12.50"}
    assert (rows[2].run_id, rows[2].delivery, rows[2].error) == (None, "failed", "timeout")
    assert [r.created_at for r in store.recent_alerts(limit=2)] == [T0 + 3 * HOUR, T0 + 2 * HOUR]
    assert [r.created_at for r in store.recent_alerts(ref="o/a")] == [T0 + 3 * HOUR, T0]
    assert [r.ref for r in store.recent_alerts(ref="o")] == ["o/a", "o/b", "o/a"]
    assert [r.ref for r in store.recent_alerts(ref="p/a")] == ["p/a"]
    assert store.recent_alerts(ref="o/zzz") == []
    assert store.recent_alerts(ref="a") == []


# -- silences ----------------------------------------------------------------------------


def test_silences_add_list_expire_remove(store: Store) -> None:
    kr_silence = store.add_silence("o/a", T0 + 2 * HOUR, "migration", now=T0)
    assert kr_silence == Silence(kr_silence.id, "o/a", T0 + 2 * HOUR, "migration", T0)
    assert kr_silence.until.tzinfo == UTC
    objective_silence = store.add_silence(" o ", T0 + 10 * HOUR, "offsite", now=T0 + HOUR)
    assert objective_silence.target == "o"
    assert store.silences(now=T0 + HOUR) == [kr_silence, objective_silence]
    # Expired: no longer active, still listed on request and with no `now`.
    assert store.silences(now=T0 + 2 * HOUR) == [objective_silence]
    assert store.silences(now=T0 + 2 * HOUR, include_expired=True) == [
        kr_silence, objective_silence,
    ]  # fmt: skip
    assert store.silences() == [kr_silence, objective_silence]
    # An expired silence cannot be removed; an active one can, once.
    assert store.remove_silence(kr_silence.id, now=T0 + 3 * HOUR) is False
    assert store.remove_silence(objective_silence.id, now=T0 + 3 * HOUR) is True
    assert store.remove_silence(objective_silence.id, now=T0 + 3 * HOUR) is False
    assert store.remove_silence(424242, now=T0) is False
    assert store.silences(now=T0 + 3 * HOUR) == []
    assert store.silences(now=T0 + 3 * HOUR, include_expired=True) == [kr_silence]
    assert store.silences() == [kr_silence]


@pytest.mark.parametrize(
    ("target", "until", "message"),
    [("", T0 + HOUR, "needs a target"), ("o/a", T0, "must end after"),
     ("o/a", T0 - HOUR, "must end after")],
)  # fmt: skip
def test_add_silence_refuses_nonsense(
    store: Store, target: str, until: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.add_silence(target, until, "x", now=T0)
    assert store.silences() == []


# -- KR history --------------------------------------------------------------------------


def test_kr_history_newest_first(store: Store, krs: dict[str, int]) -> None:
    a, b = krs["o/a"], krs["o/b"]
    run_id = store.start_run(T0)
    store.record_results(
        run_id,
        [
            MeasurementRecord(a, T0, T0, "ok", Decimal("1.10")),
            MeasurementRecord(a, T0 + 2 * HOUR, T0 + 2 * HOUR, "error", None, "HTTP 503", "5xx"),
            # Backfilled: describes an earlier time, fetched later.
            MeasurementRecord(a, T0 + 3 * HOUR, T0 - HOUR, "ok", Decimal(7)),
            MeasurementRecord(a, T0 + HOUR, T0 + HOUR, "no_data", None, "empty result"),
            MeasurementRecord(b, T0 + 9 * HOUR, T0 + 9 * HOUR, "ok", Decimal(1)),
        ],
        [],
    )
    assert store.kr_history(a) == [
        MeasurementRow(T0 + 3 * HOUR, T0 - HOUR, "ok", Decimal(7), None, run_id=run_id),
        MeasurementRow(T0 + 2 * HOUR, T0 + 2 * HOUR, "error", None, "HTTP 503", run_id=run_id),
        MeasurementRow(T0 + HOUR, T0 + HOUR, "no_data", None, "empty result", run_id=run_id),
        MeasurementRow(T0, T0, "ok", Decimal("1.10"), None, run_id=run_id),
    ]
    assert [row.measured_at for row in store.kr_history(a, limit=2)] == [
        T0 + 3 * HOUR, T0 + 2 * HOUR,
    ]  # fmt: skip
    assert store.kr_history(424242) == []


def test_alert_state_rows_are_keyed_by_kr_and_kind(engine: sa.Engine) -> None:
    # The primary key is what makes the upsert an upsert.
    from okr_pipeline.okr_store.db import upgrade

    upgrade(engine)
    pk = sa.inspect(engine).get_pk_constraint(AlertStateRow.__tablename__)
    assert pk["constrained_columns"] == ["kr_id", "kind"]
