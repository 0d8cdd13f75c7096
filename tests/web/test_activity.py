"""The runs page and the alerts page: counts, failures with messages, Prefect links, alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from okr_pipeline.okr_store.records import MeasurementRecord
from okr_pipeline.web.app import create_app
from okr_pipeline.web.model import AlertRow, RunRow, SilenceRow
from tests.browser.served_demo import CHART_KR, FilledDemo, kr_id_of
from tests.web.html_parts import select

FLOW_RUN = "0b5c3a52-9d6f-4a51-8e1e-2f6d3c1a9b77"
PRETEND_UI = "http://prefect.example:4200"


@pytest.fixture(scope="module")
def failed_run(web_demo: FilledDemo) -> int:
    """A run (after the demo's) whose one KR failed, with a flow run id; a silence."""
    as_of = web_demo.now + timedelta(seconds=30)
    with web_demo.store() as store:
        kr_id = kr_id_of(store, CHART_KR, web_demo.clock())
        run_id = store.start_run(as_of, FLOW_RUN)
        failure = MeasurementRecord(
            kr_id, as_of, as_of, "error", error_message="timeout after 30 s", error_kind="retriable"
        )
        store.record_results(run_id, [failure], [])
        store.finish_run(run_id, {"total": 1, "ok": 0, "no_data": 0, "error": 1}, "failed")
        store.add_silence(CHART_KR, web_demo.now + timedelta(days=2), "migration", web_demo.now)
    return run_id


@pytest.fixture(scope="module")
def linked(web_demo: FilledDemo) -> Iterator[TestClient]:
    app = create_app(web_demo.settings, clock=web_demo.clock, prefect_ui_url=f"{PRETEND_UI}/api")
    with TestClient(app) as test_client:
        yield test_client


def test_runs_show_counts_failures_and_the_flow_run(
    linked: TestClient, web_demo: FilledDemo, failed_run: int
):
    runs = [RunRow.model_validate(r) for r in linked.get("/api/runs").json()]
    with web_demo.store() as store:
        stored = store.runs(50)
    assert [r.id for r in runs] == [r.id for r in stored]
    for shown, row in zip(runs, stored, strict=True):
        assert (shown.measured, shown.no_data, shown.errors, shown.total) == (
            row.ok,
            row.no_data,
            row.error,
            row.total,
        )
        assert shown.as_of == row.as_of and shown.status == row.status
        assert shown.duration_seconds is not None and shown.duration_seconds >= 0
    failed = runs[0]
    assert failed.id == failed_run and failed.status == "failed"
    assert [(f.ref, f.message) for f in failed.failures] == [(CHART_KR, "timeout after 30 s")]
    assert failed.flow_run_url == f"{PRETEND_UI}/runs/flow-run/{FLOW_RUN}"
    page = linked.get("/runs").text
    (row,) = [e for e in select(page, "tr", cls="run") if e.attrs["data-run"] == str(failed_run)]
    assert "timeout after 30 s" in row.content and CHART_KR in row.content
    assert f'href="{PRETEND_UI}/runs/flow-run/{FLOW_RUN}"' in page


def test_without_the_prefect_ui_there_is_no_link(client: TestClient, failed_run: int):
    runs = client.get("/api/runs").json()
    assert runs[0]["flow_run_id"] == FLOW_RUN and runs[0]["flow_run_url"] is None


def test_a_failed_measurement_keeps_the_last_good_value_in_view(
    client: TestClient, failed_run: int
):
    row = next(r for r in client.get("/api/overview").json()["krs"] if r["ref"] == CHART_KR)
    assert row["status"] == "error" or row["error"] == "timeout after 30 s"
    assert row["last_good_value"] is not None  # never replaced by 0
    history = client.get(f"/api/krs/{CHART_KR}/history").json()
    assert history[0]["outcome"] == "error" and history[0]["error"] == "timeout after 30 s"


def test_alerts_and_silences(client: TestClient, web_demo: FilledDemo, failed_run: int):
    with web_demo.store() as store:
        stored = store.recent_alerts(limit=100)
    alerts = [AlertRow.model_validate(a) for a in client.get("/api/alerts").json()]
    assert [(a.id, a.ref, a.kind, a.transition, a.delivery) for a in alerts] == [
        (a.id, a.ref, a.kind, a.transition, a.delivery) for a in stored
    ]
    silences = [SilenceRow.model_validate(s) for s in client.get("/api/silences").json()]
    assert [(s.target, s.reason, s.active) for s in silences] == [(CHART_KR, "migration", True)]
    page = client.get("/alerts").text
    assert len(select(page, "tr", data_silence=str(silences[0].id))) == 1
    assert len(select(page, "tr", cls=None)) >= len(alerts)
    kr_page = client.get(f"/kr/{CHART_KR}").text
    assert "migration" in kr_page
