"""The overview page and /api/overview show what the store holds, filtered and paged."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from okr_pipeline.web.model import OverviewPage, band_of
from okr_pipeline.web.overview import overview
from okr_pipeline.web.standing import judged, kr_score, objective_score_map
from tests.browser.served_demo import FilledDemo
from tests.web.html_parts import kr_rows, one, select


def stored(demo: FilledDemo) -> dict[str, object]:
    """Where each KR stands in the store as of the app's clock, by ref."""
    now = demo.clock()
    with demo.store() as store:
        rows = judged(store.latest_status(at=now), now, demo.settings.stale_after_periods)
    return {row.ref: row for row in rows}


def test_every_kr_shows_the_numbers_the_store_holds(client: TestClient, web_demo: FilledDemo):
    page = client.get("/")
    assert page.status_code == 200
    rows = kr_rows(page.text)
    expected = stored(web_demo)
    assert set(rows) == set(expected)
    for ref, row in expected.items():
        shown = rows[ref]
        assert shown["data-value"] == ("" if row.value is None else str(row.value)), ref
        assert shown["data-status"] == (row.status or "none"), ref
        counted = kr_score(row).score
        assert shown["data-score"] == ("" if counted is None else repr(counted)), ref
    assert one(page.text, "span", id="kr-count").attrs["data-count"] == str(len(expected))


def test_objectives_carry_their_rolled_up_scores(client: TestClient, web_demo: FilledDemo):
    expected = stored(web_demo)
    scores = objective_score_map(list(expected.values()))
    data = OverviewPage.model_validate(client.get("/api/overview").json())
    assert {node.key: node.score for node in data.objectives} == {
        key: result.score for key, result in scores.items()
    }
    for node in data.objectives:
        assert node.band == band_of(node.score)
    page = client.get("/").text
    shown = {e.attrs["data-objective"] for e in select(page, "details", cls="objective")}
    assert shown == set(scores)
    # Children come after their parent, one level deeper.
    depth = {node.key: node.depth for node in data.objectives}
    order = [node.key for node in data.objectives]
    for node in data.objectives:
        if node.parent is not None:
            assert order.index(node.parent) < order.index(node.key)
            assert depth[node.key] == depth[node.parent] + 1


@pytest.mark.parametrize("status", ["on_track", "off_track", "at_risk"])
def test_the_status_filter_narrows_to_that_status(
    client: TestClient, web_demo: FilledDemo, status: str
):
    expected = {ref for ref, row in stored(web_demo).items() if row.status == status}
    rows = kr_rows(client.get("/", params={"status": status}).text)
    assert set(rows) == expected
    assert all(row["data-status"] == status for row in rows.values())


def test_owner_objective_and_search_filters_narrow(client: TestClient, web_demo: FilledDemo):
    everything = stored(web_demo)
    owner = "sam@example.com"
    rows = kr_rows(client.get("/", params={"owner": owner}).text)
    assert set(rows) == {ref for ref, row in everything.items() if row.owner == owner}
    assert 0 < len(rows) < len(everything)

    # An objective brings the objectives under it along (the alignment tree).
    rows = kr_rows(client.get("/", params={"objective": "podcast-discovery"}).text)
    assert rows and all(ref.startswith("podcast-discovery/") for ref in rows)
    rows = kr_rows(client.get("/", params={"objective": "grow-listening"}).text)
    assert set(rows) == set(everything)

    rows = kr_rows(client.get("/", params={"q": "RESPONSE time"}).text)
    assert set(rows) == {"support-excellence/response-time"}
    assert kr_rows(client.get("/", params={"q": "no-such-words"}).text) == {}


def test_the_filter_form_keeps_what_was_chosen(client: TestClient):
    page = client.get("/", params={"status": "off_track", "q": "listen"}).text
    form = one(page, "form", id="filters")
    assert form.attrs["method"] == "get"
    names = {e.attrs.get("name") for e in select(page, "select") + select(page, "input")}
    assert {"cycle", "owner", "status", "objective", "q"} <= names
    assert one(page, "input", name="q").attrs["value"] == "listen"
    chosen = [e for e in select(page, "option", value="off_track") if "selected" in e.attrs]
    assert len(chosen) == 1


def test_each_kr_links_to_its_page(client: TestClient):
    page = client.get("/").text
    links = [e.attrs["href"] for e in select(page, "a", cls="kr-link")]
    assert "/kr/support-excellence/response-time" in links
    for href in links:
        assert client.get(href).status_code == 200, href


def test_rows_are_paged(client: TestClient, web_demo: FilledDemo):
    total = len(stored(web_demo))
    seen: list[str] = []
    pages = None
    for number in range(1, total + 2):
        data = client.get("/api/overview", params={"page_size": 3, "page": number}).json()
        pages = data["page"]["pages"]
        if number > pages:
            # Past the last page: the last page again, never an error.
            assert data["page"]["number"] == pages
            break
        seen.extend(row["ref"] for row in data["krs"])
    assert pages == -(-total // 3)
    assert len(seen) == len(set(seen)) == total


def test_an_unknown_cycle_is_a_404_naming_the_known_ones(client: TestClient):
    page = client.get("/", params={"cycle": "1999-Q1"})
    assert page.status_code == 404
    assert "No cycle &#39;1999-Q1&#39;" in page.text and "Cycles:" in page.text
    answer = client.get("/api/overview", params={"cycle": "1999-Q1"})
    assert answer.status_code == 404
    assert "No cycle '1999-Q1'" in answer.json()["detail"]


def test_overview_counts_statuses_and_judges_staleness_at_its_clock(web_demo: FilledDemo):
    later = datetime(2099, 1, 1, tzinfo=UTC)
    with web_demo.store() as store:
        now = overview(store, now=web_demo.clock())
        cycle = now.cycle
        stale = overview(store, cycle=cycle, now=later)
    assert sum(now.counts.values()) == now.total
    assert Counter(row.status for row in now.krs) == Counter(
        {k: v for k, v in now.counts.items() if k != "none"}
    )
    # Long after the last run every KR that ever had a good value is stale, and says why.
    measured = [row for row in stale.krs if row.last_good_value is not None]
    assert measured
    assert all(row.status == "stale" and row.reason for row in measured)
    assert all(row.status != "stale" for row in stale.krs if row.last_good_value is None)


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (None, None),
        (0.0, "red"),
        (0.3, "red"),
        (0.34, "red"),
        (0.35, "yellow"),
        (0.4, "yellow"),
        (0.6, "yellow"),
        (0.649, "yellow"),
        (0.65, "green"),
        (0.7, "green"),
        (1.0, "green"),
        (float("nan"), None),
    ],
)
def test_google_bands(score, band):
    assert band_of(score) == band
