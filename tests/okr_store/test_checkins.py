"""Check-ins and notes in the store (migration 0004), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_store.db import current_revision, migrate, upgrade
from okr_pipeline.okr_store.models import Base, Measurement
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord, NoteRow
from okr_pipeline.okr_store.store import Store

from .conftest import kr, objective, okr_set

T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
DAY = timedelta(days=1)
MANUAL = {"type": "manual"}


def _definitions(store: Store) -> dict[str, int]:
    store.sync_definitions(okr_set([objective("o", [kr("measured"), kr("manual", source=MANUAL)])]))
    return {k.kr_key: k.kr_id for k in store.active_key_results()}


def _rows(engine: sa.Engine) -> dict[str, list[tuple[str, ...]]]:
    with engine.connect() as conn:
        return {
            name: sorted(tuple(str(v) for v in row) for row in conn.execute(sa.select(table)))
            for name, table in Base.metadata.tables.items()
            if name not in ("kr_notes",)
        }


def test_upgrade_from_0003_keeps_every_row(engine: sa.Engine) -> None:
    migrate(engine, "upgrade", "0003")
    # Rows as a 0003 store holds them, written through the 0003 columns only.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO cycles (id, name, start_at, end_at, timezone) "
                "VALUES (1, '2026-Q4', :start, :end, 'UTC')"
            ),
            {"start": datetime(2026, 10, 1), "end": datetime(2027, 1, 1)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO objectives (id, cycle_id, key, title, owner, type) "
                "VALUES (1, 1, 'o', 'O', 'o@example.com', 'aspirational')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO key_results (id, objective_id, key, title, unit, kind, baseline, "
                "baseline_auto, target, target_value, weight, schedule, source_json, "
                "source_type, definition_hash) VALUES (1, 1, 'a', 'A', '', 'increase', '1', "
                ":false, '2', '2', '1', '0 * * * *', '{\"type\": \"sql\"}', 'sql', 'h')"
            ),
            {"false": False},
        )
        conn.execute(
            sa.text(
                "INSERT INTO runs (id, started_at, as_of, total, ok, no_data, error, status) "
                "VALUES (1, :t, :t, 1, 1, 0, 0, 'completed')"
            ),
            {"t": datetime(2026, 10, 5, 9)},
        )
        for table in ("measurements", "superseded_measurements"):
            extra = ", measurement_id, superseded_at" if table != "measurements" else ""
            values = ", 7, :t" if table != "measurements" else ""
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} (kr_id, run_id, measured_at, as_of, value, outcome"
                    f"{extra}) VALUES (1, 1, :t, :t, '1.50', 'ok'{values})"
                ),
                {"t": datetime(2026, 10, 5, 9)},
            )
    upgrade(engine)
    assert current_revision(engine) == "0006"
    store = Store(engine)
    (measured,) = store.measurements([1])
    assert (measured.value, measured.kind, measured.author, measured.note) == (
        Decimal("1.50"), "measured", None, None,
    )  # fmt: skip
    with engine.connect() as conn:
        audit = conn.execute(sa.text("SELECT kind, author, note FROM superseded_measurements"))
        assert [tuple(row) for row in audit] == [("measured", None, None)]
    assert [r.trigger for r in store.runs()] == ["run"]
    assert store.notes() == []
    # Downgrading keeps the rows too (the kinds go; notes are dropped).
    kept = _rows(engine)
    migrate(engine, "downgrade", "0003")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM measurements")).scalar() in (
            "1.50", Decimal("1.50"),
        )  # fmt: skip
        assert "kr_notes" not in sa.inspect(conn).get_table_names()
    upgrade(engine)
    assert _rows(engine) == kept


def test_kind_is_checked(store: Store) -> None:
    ids = _definitions(store)
    run_id = store.start_run(T0)
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(
            sa.insert(Measurement).values(
                kr_id=ids["manual"], run_id=run_id, measured_at=T0, as_of=T0,
                value=Decimal(1), outcome="ok", kind="guessed",
            )
        )  # fmt: skip
    with pytest.raises(ValueError, match="invalid run trigger 'cron'"):
        store.start_run(T0, trigger="cron")


def test_checkins_are_history_with_author_and_note(store: Store) -> None:
    ids = _definitions(store)
    run_id = store.start_run(T0, trigger="checkin")
    checkin = MeasurementRecord(
        ids["manual"], T0, T0, "ok", Decimal("42.50"), kind="checkin", author="alice",
        note="survey",
    )  # fmt: skip
    store.record_results(
        run_id,
        [checkin, MeasurementRecord(ids["measured"], T0, T0, "ok", Decimal(3))],
        [EvaluationRecord(ids["manual"], T0, "on_track", Decimal("42.50"))],
    )
    (row,) = store.kr_history(ids["manual"])
    assert (row.value, row.kind, row.author, row.note, row.run_id) == (
        Decimal("42.50"), "checkin", "alice", "survey", run_id,
    )  # fmt: skip
    (stored,) = store.measurements([ids["manual"]])
    assert (stored.kind, stored.author, stored.note) == ("checkin", "alice", "survey")
    assert store.kr_history(ids["measured"])[0].kind == "measured"
    assert store.history([ids["manual"]]) == {ids["manual"]: [(T0, Decimal("42.50"))]}
    assert store.runs()[0].trigger == "checkin"


def test_a_manual_krs_evaluations_count_as_its_last_as_of(store: Store) -> None:
    ids = _definitions(store)
    run_id = store.start_run(T0 + 2 * DAY)
    # A run scored both KRs at T0 + 2 days; only the measured one has a measurement there.
    store.record_results(
        run_id,
        [MeasurementRecord(ids["measured"], T0, T0 + 2 * DAY, "ok", Decimal(3))],
        [
            EvaluationRecord(ids["manual"], T0 + 2 * DAY, "no_data"),
            EvaluationRecord(ids["measured"], T0 + 2 * DAY, "on_track", Decimal(3)),
            EvaluationRecord(ids["measured"], T0 + 9 * DAY, "on_track", Decimal(3)),
        ],
    )
    krs = {k.kr_key: k for k in store.active_key_results()}
    assert (krs["manual"].last_as_of, krs["manual"].latest_as_of) == (T0 + 2 * DAY,) * 2
    # Only manual KRs count evaluations: a measured KR's follow its measurements.
    assert krs["measured"].latest_as_of == T0 + 2 * DAY
    assert {k.kr_key: k.last_as_of for k in store.active_key_results(T0)} == {
        "manual": None, "measured": None,
    }  # fmt: skip
    assert store.evaluation_times([ids["manual"]]) == [(ids["manual"], run_id, T0 + 2 * DAY)]
    assert store.evaluation_times([ids["measured"]], after=T0 + 2 * DAY) == [
        (ids["measured"], run_id, T0 + 9 * DAY)
    ]
    assert store.evaluation_times([ids["measured"]], at=T0) == []


def test_notes(store: Store) -> None:
    ids = _definitions(store)
    first = store.add_note(ids["measured"], T0 + DAY, "campaign paused", "dana", T0 + 3 * DAY)
    assert first == NoteRow(
        first.id, ids["measured"], T0 + DAY, T0 + 3 * DAY, "dana", "campaign paused"
    )
    store.add_note(ids["manual"], T0, "survey late", "erin", T0)
    store.add_note(ids["measured"], T0, "before", "dana", T0 + 4 * DAY)
    # By KR, then by the as-of each note is about.
    measured = [(ids["measured"], "before"), (ids["measured"], "campaign paused")]
    manual = [(ids["manual"], "survey late")]
    expected = measured + manual if ids["measured"] < ids["manual"] else manual + measured
    assert [(n.kr_id, n.text) for n in store.notes()] == expected
    assert [n.text for n in store.notes([ids["measured"]], since=T0 + DAY)] == ["campaign paused"]
    assert [n.text for n in store.notes([ids["measured"]], until=T0)] == ["before"]
    for text, author in (("  ", "dana"), ("x", "")):
        with pytest.raises(ValueError, match="a note needs"):
            store.add_note(ids["measured"], T0, text, author, T0)
    with pytest.raises(sa.exc.IntegrityError):
        store.add_note(4242, T0, "x", "dana", T0)
