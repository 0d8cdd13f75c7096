"""The update flow end to end: real SQLite warehouse, real local HTTP API, real stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
import sqlalchemy as sa

from okr_pipeline.flows.update import update_key_results
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.okr_store.records import StatusRow
from okr_pipeline.run.record import open_store

pytestmark = pytest.mark.usefixtures("prefect_harness")

DEMO_KRS = 8


def _status(project: Path) -> dict[str, StatusRow]:
    store = open_store(load_settings(project))
    try:
        return {row.ref: row for row in store.latest_status()}
    finally:
        store.close()


def _count(project: Path, table: str) -> int:
    engine = sa.create_engine(load_settings(project).resolved_store_url())
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_demo_project_measures_every_kr(demo_project: Path) -> None:
    summary = update_key_results(project_dir=str(demo_project), all_krs=True)
    assert summary.measured == DEMO_KRS and summary.active == DEMO_KRS
    assert summary.errors == 0, summary.failed
    assert summary.definitions_synced
    rows = _status(demo_project)
    assert len(rows) == DEMO_KRS
    for ref, row in rows.items():
        assert row.value is not None, ref
        assert row.status in {"on_track", "at_risk", "off_track"}, (ref, row)
        assert row.score is not None and 0.0 <= row.score <= 1.0
    # The HTTP source (Prometheus-shaped answer, number sent as a string) was read exactly.
    uptime = rows["support-excellence/uptime"].value
    assert uptime is not None and uptime > 50
    # baseline: auto was measured at the cycle's start and the relative target resolved.
    first = rows["podcast-discovery/first-time-listeners"]
    assert first.baseline is not None and first.target_value == first.baseline * 12 / 10


def test_second_run_skips_unchanged_definitions_and_only_named_krs(demo_project: Path) -> None:
    update_key_results(project_dir=str(demo_project), all_krs=True)
    summary = update_key_results(
        project_dir=str(demo_project), kr=["uptime", "grow-listening/weekly-listens"]
    )
    assert not summary.definitions_synced
    assert summary.measured == 2
    assert _count(demo_project, "measurements") == DEMO_KRS + 2


def test_one_failing_kr_never_stops_the_others(demo_project: Path) -> None:
    okrs = demo_project / "okrs" / "support.yaml"
    text = okrs.read_text()
    text = text.replace("FROM support_tickets", "FROM no_such_table", 1)
    okrs.write_text(text)
    summary = update_key_results(project_dir=str(demo_project), all_krs=True)
    assert summary.measured == DEMO_KRS
    assert [ref for ref, _ in summary.failed] == ["support-excellence/response-time"]
    assert "no_such_table" in summary.failed[0][1]
    rows = _status(demo_project)
    failed = rows["support-excellence/response-time"]
    assert failed.status == "error" and failed.value is None
    assert "no_such_table" in (failed.error_message or "")
    assert sum(1 for r in rows.values() if r.status == "error") == 1


def test_failed_kr_keeps_its_last_good_value(demo_project: Path) -> None:
    update_key_results(project_dir=str(demo_project), all_krs=True)
    before = _status(demo_project)["support-excellence/response-time"]
    okrs = demo_project / "okrs" / "support.yaml"
    okrs.write_text(okrs.read_text().replace("FROM support_tickets", "FROM no_such_table", 1))
    update_key_results(project_dir=str(demo_project), all_krs=True)
    after = _status(demo_project)["support-excellence/response-time"]
    assert after.status == "error"
    assert after.last_good_value == before.value


def test_dry_run_stores_no_measurements(demo_project: Path) -> None:
    update_key_results(project_dir=str(demo_project), all_krs=True)
    measured = _count(demo_project, "measurements")
    summary = update_key_results(project_dir=str(demo_project), all_krs=True, dry_run=True)
    assert summary.measured == DEMO_KRS and summary.run_id is None
    assert len(summary.rows) == DEMO_KRS
    assert _count(demo_project, "measurements") == measured


def test_store_on_postgresql(
    demo_project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_STORE_URL", postgres_url)
    summary = update_key_results(project_dir=str(demo_project), all_krs=True)
    assert summary.errors == 0, summary.failed
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            statuses = conn.execute(sa.text("SELECT status FROM evaluations")).scalars().all()
    finally:
        engine.dispose()
    assert len(statuses) == DEMO_KRS
    assert not (demo_project / ".okr" / "okr.db").exists()


def test_invalid_definitions_fail_the_run_with_every_problem(demo_project: Path) -> None:
    from okr_pipeline.okr_core.errors import DefinitionError

    okrs = demo_project / "okrs" / "support.yaml"
    okrs.write_text(okrs.read_text().replace("type: sql", "type: sqll", 1))
    with pytest.raises(DefinitionError) as info:
        update_key_results(project_dir=str(demo_project), all_krs=True)
    assert "sqll" in str(info.value.problems[0])
    assert "support.yaml" in str(info.value.problems[0])


def test_run_publishes_a_table_artifact_worst_first(demo_project: Path) -> None:
    from prefect.artifacts import Artifact

    okrs = demo_project / "okrs" / "support.yaml"
    okrs.write_text(okrs.read_text().replace("FROM support_tickets", "FROM no_such_table", 1))
    summary = update_key_results(project_dir=str(demo_project), all_krs=True)
    artifact = cast(Artifact | None, Artifact.get("okr-run-results"))  # sync in a sync flow
    assert artifact is not None
    data = artifact.data if isinstance(artifact.data, list) else json.loads(str(artifact.data))
    assert len(data) == DEMO_KRS
    assert data[0]["id"] == "response-time" and data[0]["status"] == "error"
    assert f"{summary.measured} of {summary.active} KRs measured" in (artifact.description or "")
    assert "1 failed" in (artifact.description or "")


def test_the_flow_emits_an_event_per_alert_transition(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow hands the alert step Prefect's event emitter (a plain run emits none)."""
    from collections.abc import Sequence

    from okr_pipeline.flows import update
    from okr_pipeline.okr_core.alerting.model import Notification

    emitted: list[tuple[str, str, str]] = []

    def record(notifications: Sequence[Notification]) -> None:
        emitted.extend((n.kr.ref, n.kind, n.transition) for n in notifications)

    monkeypatch.setattr(update, "emit_transition_events", record)
    # Alerts fire after a few evaluations in a row: measure three times, a second apart.
    now = datetime.now(UTC).replace(microsecond=0)
    fired = 0
    for ago in (2, 1, 0):
        summary = update_key_results(
            project_dir=str(demo_project), all_krs=True, as_of=now - timedelta(seconds=ago)
        )
        transitions = summary.alerts.transitions.items()
        fired += sum(n for name, n in transitions if name.endswith("firing"))
    assert fired > 0, summary.alerts.transitions
    assert len([e for e in emitted if e[2] == "firing"]) == fired


def test_okr_runs_the_flow_without_prefect_heartbeats(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prefect's heartbeat thread made each in-process run up to a second longer; okr's own
    # run lease marks a crashed run's flow run instead. Runs Prefect starts keep theirs.
    import prefect.flow_engine

    from okr_pipeline.flows.update import update_here

    beats: list[object] = []
    emit = prefect.flow_engine.FlowRunEngine._emit_flow_run_heartbeat

    def counted(engine: object, *args: object) -> None:
        beats.append(engine)
        emit(engine, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(prefect.flow_engine.FlowRunEngine, "_emit_flow_run_heartbeat", counted)
    state = update_here(project_dir=str(demo_project), all_krs=True, return_state=True)
    assert state.is_completed() and state.result().measured == DEMO_KRS
    assert beats == []
    update_key_results(project_dir=str(demo_project), all_krs=True)
    assert len(beats) >= 1  # the flow called directly beats at once
