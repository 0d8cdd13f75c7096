"""Migration 0005: the ``recorded`` delivery, with data, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_store.db import current_revision, migrate, upgrade
from okr_pipeline.okr_store.store import Store

from .conftest import kr, objective, okr_set

T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
UNROUTED = "recorded, not sent: route '{}' has no channel"


def _insert_alert(
    conn: sa.Connection, kr_id: int, run_id: int, route: str, channel: str, delivery: str,
    error: str | None,
) -> None:  # fmt: skip
    conn.execute(
        sa.text(
            "INSERT INTO alerts (run_id, kr_id, kind, transition, route, channel, delivery, "
            "payload, error, created_at) VALUES (:run, :kr, 'off_track', 'firing', :route, "
            ":channel, :delivery, '{}', :error, :t)"
        ),
        {
            "run": run_id, "kr": kr_id, "route": route, "channel": channel,
            "delivery": delivery, "error": error, "t": T0.replace(tzinfo=None),
        },
    )  # fmt: skip


def _alerts(engine: sa.Engine) -> list[tuple[str, str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT route, channel, delivery, error FROM alerts ORDER BY id")
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_unrouted_failed_alerts_become_recorded_and_back(engine: sa.Engine) -> None:
    migrate(engine, "upgrade", "0004")
    store = Store(engine)
    store.sync_definitions(okr_set([objective("o", [kr("a")])]))
    kr_id = store.active_key_results()[0].kr_id
    run_id = store.start_run(T0)
    with engine.begin() as conn:
        # As 0004-era code stored them: an alert no route had a channel for (two routes),
        # a channel that really failed, one whose error only looks alike but went to a
        # channel, a sent one and a silenced one.
        _insert_alert(conn, kr_id, run_id, "default", "", "failed", UNROUTED.format("default"))
        _insert_alert(conn, kr_id, run_id, "pm's", "", "failed", UNROUTED.format("pm's"))
        _insert_alert(conn, kr_id, run_id, "pm", "json://h", "failed", "json://h: HTTP 500")
        _insert_alert(conn, kr_id, run_id, "pm", "json://h", "failed", "recorded, not sent?")
        _insert_alert(conn, kr_id, run_id, "pm", "json://h", "sent", None)
        _insert_alert(conn, kr_id, run_id, "pm", "", "silenced", None)
    before = _alerts(engine)

    upgrade(engine)
    assert current_revision(engine) == "0006"
    after = [
        ("default", "", "recorded", None),
        ("pm's", "", "recorded", None),
        *before[2:],
    ]
    assert _alerts(engine) == after
    assert [r.delivery for r in store.recent_alerts()].count("recorded") == 2
    # Anything else is still refused.
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        _insert_alert(conn, kr_id, run_id, "pm", "", "lost", None)

    # Down again: the rows are what 0004 wrote, word for word, and 0004's check is back.
    migrate(engine, "downgrade", "0004")
    assert _alerts(engine) == before
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        _insert_alert(conn, kr_id, run_id, "pm", "", "recorded", None)
    upgrade(engine)
    assert _alerts(engine) == after


def test_a_fresh_store_takes_recorded(engine: sa.Engine) -> None:
    upgrade(engine)
    store = Store(engine)
    store.sync_definitions(okr_set([objective("o", [kr("a")])]))
    kr_id = store.active_key_results()[0].kr_id
    run_id = store.start_run(T0)
    with engine.begin() as conn:
        _insert_alert(conn, kr_id, run_id, "default", "", "recorded", None)
    assert [(r.delivery, r.error) for r in store.recent_alerts()] == [("recorded", None)]
    # The indexes and the other checks survive SQLite's rebuild of the table.
    inspector = sa.inspect(engine)
    assert {i["name"] for i in inspector.get_indexes("alerts")} == {
        "ix_alerts_created_at", "ix_alerts_kr_id_created_at",
    }  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE alerts SET kind = 'nope'"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE alerts SET kr_id = 999"))
