"""A KR's page in a real browser: the chart is drawn from the stored history, the history and
the definition are shown, no secret is."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Dashboard
from tests.browser.helpers import CHART_DATASETS, PAINTED_PIXELS, parse_time, wait_for_chart
from tests.browser.served_demo import CHART_KR, kr_id_of, latest_by_ref


def chart_data(page: Page) -> dict[str, Any]:
    """The series the page drew its chart from (``script#chart-data``)."""
    text = page.locator('script#chart-data[type="application/json"]').text_content()
    assert text, "no chart data on the page"
    data: dict[str, Any] = json.loads(text)
    return data


def test_the_chart_is_drawn_from_the_stored_history(page: Page, dashboard: Dashboard) -> None:
    demo = dashboard.demo
    page.goto(f"{dashboard.url}/kr/{CHART_KR}")
    wait_for_chart(page)

    box = page.locator("canvas#kr-chart").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100, box
    assert page.evaluate(PAINTED_PIXELS) > 500, "the canvas is blank"

    with demo.store() as store:
        kr_id = kr_id_of(store, CHART_KR, demo.now)
        kr = latest_by_ref(store)[CHART_KR]
        stored = store.history([kr_id])[kr_id]
    assert len(stored) >= 5, "the demo should have a few weeks of history"

    data = chart_data(page)
    measured = [(parse_time(point["x"]), Decimal(str(point["y"]))) for point in data["measured"]]
    assert measured == [(as_of, value) for as_of, value in stored]
    assert kr.baseline is not None and kr.target_value is not None
    assert data["baseline"] == float(kr.baseline)
    assert data["target"] == float(kr.target_value)
    assert len(data["pace"]) >= 2, "no expected-pace line"
    assert data["forecast"], "no forecast"
    assert len(data["band"]) == len(data["forecast"]), "the band should follow the forecast"

    # The chart itself draws those points: one of its datasets is exactly the history.
    expected = [[as_of.timestamp() * 1000, float(value)] for as_of, value in stored]
    datasets = page.evaluate(CHART_DATASETS)
    assert any(dataset["points"] == expected for dataset in datasets), datasets


def test_the_history_lists_every_measurement(page: Page, dashboard: Dashboard) -> None:
    demo = dashboard.demo
    page.goto(f"{dashboard.url}/kr/{CHART_KR}")
    with demo.store() as store:
        kr_id = kr_id_of(store, CHART_KR, demo.now)
        stored = store.history([kr_id])[kr_id]

    rows = page.locator("table#history tbody tr[data-kind]").all()
    shown = {
        (
            parse_time(row.get_attribute("data-as-of") or ""),
            row.get_attribute("data-kind"),
        ): row.get_attribute("data-value")
        for row in rows
    }
    for as_of, value in stored:
        assert (as_of, "measured") in shown, f"{as_of} missing from the history"
        assert Decimal(shown[(as_of, "measured")] or "NaN") == value, as_of


def test_the_status_and_definition_are_shown(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/kr/{CHART_KR}")
    with dashboard.demo.store() as store:
        kr = latest_by_ref(store)[CHART_KR]
    assert kr.status, "the demo's KR should have a status"
    expect(page.locator("#kr-status")).to_have_attribute("data-status", kr.status)
    body = page.locator("body")
    expect(body).to_contain_text("sql")
    expect(body).to_contain_text("warehouse")
    expect(body).to_contain_text("count(DISTINCT user_id)")


def test_no_secret_is_shown_on_a_kr_page(page: Page, dashboard: Dashboard) -> None:
    """The http KR authenticates with the analytics token: its page names, never shows it."""
    secrets = [value.get_secret_value() for value in dashboard.demo.settings.secrets.values()]
    assert secrets
    for ref in ("podcast-discovery/recommendation-ctr", "support-excellence/uptime", CHART_KR):
        page.goto(f"{dashboard.url}/kr/{ref}")
        html = page.content()
        for secret in secrets:
            assert secret not in html, f"a secret is on the page of {ref}"
