"""The overview in a real browser: the demo's KRs with the numbers the store holds, filters."""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.sync_api import Page, expect

from tests.browser.conftest import Dashboard
from tests.browser.helpers import set_filter, shows_value
from tests.browser.served_demo import latest_by_ref


def test_every_kr_shows_the_number_the_store_holds(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")
    with dashboard.demo.store() as store:
        stored = latest_by_ref(store)
    assert len(stored) >= 8, "the demo (and its manual KR) should be in the store"

    rows = {row.get_attribute("data-kr"): row for row in page.locator("tr.kr").all()}
    assert set(rows) == set(stored)
    expect(page.locator("#kr-count")).to_contain_text(str(len(stored)))
    for ref, kr in stored.items():
        row = rows[ref]
        shown = row.get_attribute("data-value")
        if kr.value is None:
            assert not shown, f"{ref}: no value in the store, {shown!r} on the page"
        else:
            # The exact stored decimal, not a float's rendering of it.
            assert shown is not None and Decimal(shown) == kr.value, (ref, shown, kr.value)
            text = row.inner_text()
            assert shows_value(text, kr.value), f"{ref}: {kr.value} not in {text!r}"
        status = row.get_attribute("data-status")
        assert status == kr.status if kr.status else status in ("", "none"), (ref, status)
        score = row.get_attribute("data-score")
        if kr.score is None:
            assert not score, ref
        else:
            assert score and abs(float(score) - kr.score) < 0.005, (ref, score, kr.score)
        expect(row.locator("a.kr-link")).to_have_attribute("href", re.compile(re.escape(ref)))


def test_krs_are_grouped_under_their_objectives(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")
    with dashboard.demo.store() as store:
        stored = latest_by_ref(store)
    for ref, kr in stored.items():
        group = page.locator(f'details.objective[data-objective="{kr.objective_key}"]')
        expect(group).to_have_count(1)
        expect(group.locator(f'tr.kr[data-kr="{ref}"]')).to_have_count(1)


def test_a_filter_by_owner_narrows_the_list(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")
    with dashboard.demo.store() as store:
        stored = latest_by_ref(store)
    owner = "sam@example.com"
    expected = {ref for ref, kr in stored.items() if kr.owner == owner}
    assert 0 < len(expected) < len(stored)

    set_filter(page, "owner", owner)

    expect(page.locator("tr.kr")).to_have_count(len(expected))
    assert {row.get_attribute("data-kr") for row in page.locator("tr.kr").all()} == expected
    expect(page.locator("#kr-count")).to_contain_text(str(len(expected)))


def test_a_filter_by_status_narrows_the_list(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")
    with dashboard.demo.store() as store:
        stored = latest_by_ref(store)
    statuses = sorted({kr.status for kr in stored.values() if kr.status}, key=str)
    # The least common status narrows the most.
    status = min(statuses, key=lambda s: sum(kr.status == s for kr in stored.values()))
    expected = {ref for ref, kr in stored.items() if kr.status == status}

    set_filter(page, "status", status)

    expect(page.locator("tr.kr")).to_have_count(len(expected))
    rows = page.locator("tr.kr").all()
    assert {row.get_attribute("data-kr") for row in rows} == expected
    assert {row.get_attribute("data-status") for row in rows} == {status}


def test_the_search_box_finds_a_kr_by_its_words(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")

    set_filter(page, "q", "uptime")

    expect(page.locator("tr.kr")).to_have_count(1)
    expect(page.locator("tr.kr")).to_have_attribute("data-kr", "support-excellence/uptime")


def test_a_filter_by_objective_keeps_that_objective_and_those_under_it(
    page: Page, dashboard: Dashboard
) -> None:
    page.goto(dashboard.url + "/")
    with dashboard.demo.store() as store:
        stored = latest_by_ref(store)
    expected = {ref for ref, kr in stored.items() if kr.objective_key == "podcast-discovery"}
    assert expected

    set_filter(page, "objective", "podcast-discovery")

    expect(page.locator("tr.kr")).to_have_count(len(expected))
    assert {row.get_attribute("data-kr") for row in page.locator("tr.kr").all()} == expected


def test_after_one_objective_another_can_be_chosen(page: Page, dashboard: Dashboard) -> None:
    """A person looking at one objective switches to another (or its parent) directly."""
    with dashboard.demo.store() as store:
        stored = latest_by_ref(store)
    page.goto(dashboard.url + "/?objective=podcast-discovery")
    expect(page.locator("tr.kr")).to_have_count(4)

    # The top objective holds every other one.
    set_filter(page, "objective", "grow-listening")

    expect(page.locator("tr.kr")).to_have_count(len(stored))
