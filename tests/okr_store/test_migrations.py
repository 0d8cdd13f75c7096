"""Migration 0002 (alerting) on a database holding 0001 data, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import get_args

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.alerting.model import (
    AlertKind,
    AlertPhase,
    AlertPolicyOverride,
    Delivery,
    Transition,
)
from okr_pipeline.okr_store import models
from okr_pipeline.okr_store.db import current_revision, migrate, upgrade
from okr_pipeline.okr_store.models import (
    Cycle,
    Evaluation,
    KeyResult,
    Measurement,
    Meta,
    Objective,
    Run,
)
from okr_pipeline.okr_store.store import Store
from okr_pipeline.okr_store.sync import FINGERPRINT_KEY, _canonical_json

from .conftest import kr, objective, okr_set

T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
SOURCE = {"type": "sql", "connection": "warehouse", "query": "SELECT 1"}


def _migrate(engine: sa.Engine, action: str, revision: str) -> None:
    migrate(engine, action, revision)


def _hash_0001(title: str) -> str:
    # The definition hash as 0001-era code computed it (before `alerts:` existed) for
    # kr(key, title=...) with the conftest's defaults.
    payload = [title, "", "increase", "100", "150", None, "1", "0 * * * *", SOURCE]
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()


def _fill_0001(engine: sa.Engine) -> dict[str, int]:
    """Rows as a 0001 store held them: only the columns 0001 had."""
    with engine.begin() as conn:
        cycle = conn.execute(
            sa.insert(Cycle).values(
                name="2026-Q4",
                start_at=datetime(2026, 9, 30, 22, tzinfo=UTC),
                end_at=datetime(2026, 12, 31, 23, tzinfo=UTC),
                timezone="Europe/Berlin",
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        obj = conn.execute(
            sa.insert(Objective).values(
                cycle_id=cycle,
                key="o",
                title="Objective o",
                owner="o@example.com",
                type="aspirational",
                parent_key=None,
                success_level=None,
                archived_at=None,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        ids = {}
        for key in ("plain", "alerted"):
            ids[key] = conn.execute(
                sa.insert(KeyResult).values(
                    objective_id=obj,
                    key=key,
                    title=f"KR {key}",
                    unit="",
                    kind="increase",
                    baseline=Decimal(100),
                    baseline_auto=False,
                    target="150",
                    target_value=Decimal(150),
                    floor=None,
                    weight=Decimal(1),
                    schedule="0 * * * *",
                    source_json=SOURCE,
                    source_type="sql",
                    definition_hash=_hash_0001(f"KR {key}"),
                    archived_at=None,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        run = conn.execute(
            sa.insert(Run).values(
                started_at=T0, as_of=T0, total=1, ok=1, no_data=0, error=0, status="completed"
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(
            sa.insert(Measurement).values(
                kr_id=ids["plain"],
                run_id=run,
                measured_at=T0,
                as_of=T0,
                value=Decimal("110.25"),
                outcome="ok",
            )
        )
        conn.execute(
            sa.insert(Evaluation).values(
                kr_id=ids["plain"],
                run_id=run,
                evaluated_at=T0,
                value=Decimal("110.25"),
                progress=0.205,
                score=0.205,
                forecast_value=Decimal(140),
                status="at_risk",
                reason="behind pace",
            )
        )
        conn.execute(sa.insert(Meta).values(key=FINGERPRINT_KEY, value="fp-1"))
        conn.execute(sa.insert(Meta).values(key="probe", value="kept"))
    return ids


def test_upgrade_from_0001_keeps_data(engine: sa.Engine) -> None:
    _migrate(engine, "upgrade", "0001")
    assert current_revision(engine) == "0001"
    assert "forecast_low" not in {c["name"] for c in sa.inspect(engine).get_columns("evaluations")}
    ids = _fill_0001(engine)

    upgrade(engine)
    assert current_revision(engine) == "0006"
    store = Store(engine)
    krs = {k.kr_key: k for k in store.active_key_results()}
    assert set(krs) == {"plain", "alerted"}
    assert krs["plain"].alert_policy is None
    assert (krs["plain"].baseline, krs["plain"].target_value) == (Decimal(100), Decimal(150))
    row = {r.kr_key: r for r in store.latest_status()}["plain"]
    assert (row.status, row.value, row.forecast_value, row.reason) == (
        "at_risk",
        Decimal("110.25"),
        Decimal(140),
        "behind pace",
    )
    assert (row.forecast_low, row.forecast_high) == (None, None)
    assert store.history([ids["plain"]]) == {ids["plain"]: [(T0, Decimal("110.25"))]}
    assert store.runs()[0].ok == 1
    assert store.alert_states() == {} and store.silences() == [] and store.recent_alerts() == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(Meta.value).where(Meta.key == "probe")).scalar() == "kept"
    # The fingerprint is cleared so the next run re-syncs and fills alert_policy.
    assert store.definitions_fingerprint() is None
    result = store.sync_definitions(
        okr_set(
            [
                objective(
                    "o",
                    [
                        kr("plain", source=SOURCE),
                        kr("alerted", source=SOURCE, alerts={"pending_evaluations": 3}),
                    ],
                )
            ]
        )
    )
    # A KR without `alerts:` keeps its 0001 hash: upgrading does not count it as edited.
    assert (result.unchanged, result.updated) == (1, 1)
    assert {k.kr_key: k.alert_policy for k in store.active_key_results()} == {
        "plain": None, "alerted": {"pending_evaluations": 3},
    }  # fmt: skip


def test_downgrade_to_0001_keeps_0001_data(engine: sa.Engine) -> None:
    upgrade(engine)
    store = Store(engine)
    store.sync_definitions(okr_set([objective("o", [kr("a", alerts={"enabled": False})])]))
    kr_id = store.active_key_results()[0].kr_id
    run_id = store.start_run(T0)
    store.add_silence("o", T0 + timedelta(days=1), "holiday", T0)
    _migrate(engine, "downgrade", "0001")
    assert current_revision(engine) == "0001"
    inspector = sa.inspect(engine)
    assert not {"alert_states", "alerts", "silences"} & set(inspector.get_table_names())
    assert "alert_policy" not in {c["name"] for c in inspector.get_columns("key_results")}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id FROM key_results")).scalar() == kr_id
        assert conn.execute(sa.text("SELECT id FROM runs")).scalar() == run_id
    upgrade(engine)  # and back up
    assert current_revision(engine) == "0006"


@pytest.mark.parametrize(
    ("stored", "literal"),
    [
        (models.ALERT_KINDS, AlertKind),
        (models.ALERT_PHASES, AlertPhase),
        (models.TRANSITIONS, Transition),
        (models.DELIVERIES, Delivery),
    ],
)
def test_check_constraints_allow_every_model_value(
    stored: tuple[str, ...], literal: object
) -> None:
    # The CHECK constraints of migration 0002 spell these out; a value added to the shared
    # model needs a migration, and this test is what says so.
    assert set(stored) == set(get_args(literal))


def test_alert_policy_json_round_trips() -> None:
    override = AlertPolicyOverride.model_validate(
        {"pending_for": "6h", "repeat_interval": "1d", "no_data": "alert"}
    )
    dumped = override.model_dump(mode="json", exclude_none=True)
    assert AlertPolicyOverride.model_validate(dumped) == override
    assert override.pending_for == timedelta(hours=6)


def test_upgrade_to_0003_moves_duplicate_as_ofs_aside(engine: sa.Engine) -> None:
    # A 0002 store in which a rerun stored a second measurement and evaluation at one as-of.
    _migrate(engine, "upgrade", "0001")
    ids = _fill_0001(engine)
    _migrate(engine, "upgrade", "0002")
    with engine.begin() as conn:
        run = conn.execute(sa.text("SELECT id FROM runs")).scalar_one()
        conn.execute(
            sa.insert(Measurement).values(
                kr_id=ids["plain"], run_id=run, measured_at=T0 + timedelta(minutes=5),
                as_of=T0, value=Decimal("111"), outcome="ok",
            )
        )  # fmt: skip
        conn.execute(
            sa.insert(Evaluation).values(
                kr_id=ids["plain"], run_id=run, evaluated_at=T0, value=Decimal("111"),
                progress=0.22, score=0.22, status="at_risk", reason="rerun",
            )
        )  # fmt: skip
    upgrade(engine)
    assert current_revision(engine) == "0006"
    store = Store(engine)
    # The newest row of the as-of is current; the older one is kept for audit only.
    assert store.history([ids["plain"]]) == {ids["plain"]: [(T0, Decimal("111"))]}
    row = {r.kr_key: r for r in store.latest_status()}["plain"]
    assert (row.value, row.reason) == (Decimal("111"), "rerun")
    with engine.connect() as conn:
        audit = conn.execute(sa.text("SELECT value FROM superseded_measurements")).all()
        evaluations = conn.execute(sa.text("SELECT count(*) FROM evaluations")).scalar()
    assert [Decimal(str(v)) for (v,) in audit] == [Decimal("110.25")] and evaluations == 1
    # Runs can now be closed as crashed once their lease has run out.
    started = store.start_run(T0, None, lease_until=T0)
    assert [r.id for r in store.close_crashed_runs(T0 + timedelta(minutes=1))] == [started]
    assert {r.id: r.status for r in store.runs()}[started] == "crashed"
    # And the database refuses a second row for one (KR, as-of).
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.insert(Measurement).values(
                kr_id=ids["plain"], run_id=run, measured_at=T0, as_of=T0,
                value=Decimal(1), outcome="ok",
            )
        )  # fmt: skip


def test_0006_drops_the_index_nothing_reads_and_the_downgrade_restores_it(
    engine: sa.Engine,
) -> None:
    def measurement_indexes() -> set[str]:
        return {str(ix["name"]) for ix in sa.inspect(engine).get_indexes("measurements")}

    unread = "ix_measurements_kr_id_outcome_measured_at"
    upgrade(engine)
    assert unread not in measurement_indexes()
    assert {"ix_measurements_kr_id_measured_at", "ix_measurements_kr_id_outcome_as_of"} <= (
        measurement_indexes()
    )
    _migrate(engine, "downgrade", "0005")
    assert unread in measurement_indexes()
    upgrade(engine)
    assert unread not in measurement_indexes()
