"""A KR's page and /api/krs/{ref}: its chart is its history, its table the measurements."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from okr_pipeline.web.model import HistoryRow, KrDetail
from okr_pipeline.web.pages import iso
from tests.browser.served_demo import CHART_KR, FilledDemo, kr_id_of
from tests.web.html_parts import chart_data, one, select


def stored_history(demo: FilledDemo, ref: str) -> list:
    now = demo.clock()
    with demo.store() as store:
        kr_id = kr_id_of(store, ref, now)
        return store.measurements([kr_id])


def test_the_chart_draws_the_stored_history(client: TestClient, web_demo: FilledDemo):
    page = client.get(f"/kr/{CHART_KR}")
    assert page.status_code == 200
    data = chart_data(page.text)
    good = [m for m in stored_history(web_demo, CHART_KR) if m.outcome == "ok"]
    assert len(good) >= 3
    assert data["measured"] == [{"x": iso(m.as_of), "y": float(m.value)} for m in good]
    # Baseline and target lines, the pace from one to the other over the cycle.
    assert data["baseline"] == 2100 and data["target"] == 2400
    assert [p["y"] for p in data["pace"]] == [2100, 2400]
    assert data["pace"][0]["x"] == data["start"] and data["pace"][-1]["x"] == data["end"]
    # The forecast starts at the last value and ends at the cycle's end, inside its band.
    assert data["forecast"][0] == data["measured"][-1]
    assert data["forecast"][-1]["x"] == data["end"]
    low, high = data["band"][-1]["low"], data["band"][-1]["high"]
    assert low <= data["forecast"][-1]["y"] <= high
    one(page.text, "canvas", id="kr-chart")
    scripts = [e.attrs.get("src", "") for e in select(page.text, "script")]
    assert "/static/chart.umd.min.js" in scripts and "/static/okr.js" in scripts
    assert all(not src.startswith(("http:", "https:", "//")) for src in scripts)


def test_the_history_table_lists_every_measurement(client: TestClient, web_demo: FilledDemo):
    page = client.get(f"/kr/{CHART_KR}").text
    rows = [
        e.attrs for e in select(page, "tr") if "data-as-of" in e.attrs and "data-kind" in e.attrs
    ]
    stored = stored_history(web_demo, CHART_KR)
    assert [(r["data-as-of"], r["data-kind"], r["data-value"]) for r in rows] == [
        (iso(m.as_of), "measured", "" if m.value is None else str(m.value))
        for m in sorted(stored, key=lambda m: m.as_of, reverse=True)
    ]
    api = [HistoryRow.model_validate(r) for r in client.get(f"/api/krs/{CHART_KR}/history").json()]
    assert [(h.as_of, h.value) for h in api] == [
        (m.as_of, None if m.value is None else str(m.value))
        for m in sorted(stored, key=lambda m: m.as_of, reverse=True)
    ]
    assert all(h.run_id is not None and h.kind == "measured" for h in api)


def test_status_reason_definition_and_evaluations(client: TestClient, web_demo: FilledDemo):
    page = client.get(f"/kr/{CHART_KR}").text
    detail = KrDetail.model_validate(client.get(f"/api/krs/{CHART_KR}").json())
    with web_demo.store() as store:
        row = next(r for r in store.latest_status(at=web_demo.clock()) if r.ref == CHART_KR)
    status = one(page, "div", id="kr-status")
    assert status.attrs["data-status"] == row.status == detail.row.status
    assert row.reason in status.content
    assert detail.row.value == str(row.value)
    assert detail.definition.source_type == "sql"
    assert detail.definition.connection == "warehouse"
    assert "count(DISTINCT user_id)" in (detail.definition.query or "")
    assert len(detail.evaluations) == len(detail.history)
    assert detail.evaluations[0].status == row.status
    assert not detail.manual


def test_a_kr_is_found_by_its_id_alone(client: TestClient):
    assert client.get("/api/krs/weekly-active-listeners").json()["row"]["ref"] == CHART_KR


def test_an_unknown_kr_is_a_404_with_the_closest_names(client: TestClient):
    page = client.get("/kr/grow-listening/weekly-active-listener")
    assert page.status_code == 404
    assert CHART_KR in page.text
    answer = client.get("/api/krs/grow-listening/weekly-active-listener")
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert detail.startswith(
        "No key result named 'grow-listening/weekly-active-listener'. Did you mean "
    )
    assert f"'{CHART_KR}'" in detail and detail.endswith("The overview lists them.")


def test_the_manual_kr_page_has_no_chart_points_and_says_how_to_check_in(
    client: TestClient, web_demo: FilledDemo
):
    detail = KrDetail.model_validate(client.get(f"/api/krs/{web_demo.manual_ref}").json())
    assert detail.manual and detail.definition.source_type == "manual"
    assert detail.chart.measured == []
    assert detail.row.value is None  # never a 0 for a number nobody entered


def test_exact_values_are_kept_as_written(client: TestClient, web_demo: FilledDemo):
    for row in client.get("/api/overview").json()["krs"]:
        if row["value"] is not None:
            assert str(Decimal(row["value"])) == row["value"]
