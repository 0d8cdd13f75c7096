"""Check-ins through the KR page's form, as a person enters them: with the token the value
shows in the history and changes the status; without it, or with a bad value, the page says
why and the store is unchanged."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Dashboard
from tests.browser.helpers import submit
from tests.browser.served_demo import CHART_KR, TOKEN, latest_by_ref, store_snapshot


def open_form(page: Page, dashboard: Dashboard) -> str:
    """Open the manual KR's page; return its status as shown."""
    page.goto(f"{dashboard.url}/kr/{dashboard.demo.manual_ref}")
    expect(page.locator("form#checkin")).to_be_visible()
    expect(page.locator("form#checkin [name=csrf_token]")).to_have_count(1)
    return page.locator("#kr-status").get_attribute("data-status") or ""


def fill(page: Page, *, value: str, token: str, note: str = "", as_of: str = "") -> None:
    """Type into the check-in form and send it."""
    form = page.locator("form#checkin")
    form.locator("[name=value]").fill(value)
    form.locator("[name=note]").fill(note)
    form.locator("[name=token]").fill(token)
    if as_of:
        field = form.locator("[name=as_of]")
        kind = field.get_attribute("type") or "text"
        # What each kind of input accepts for the same moment.
        field.fill({"date": as_of[:10], "datetime-local": as_of[:16]}.get(kind, as_of))
    submit(form)


def test_a_checkin_shows_in_the_history_and_changes_the_status(
    page: Page, dashboard: Dashboard
) -> None:
    ref = dashboard.demo.manual_ref
    before = open_form(page, dashboard)

    fill(page, value="3", token=TOKEN, note="Berlin and Lisbon meetups")

    expect(page.locator(".flash.ok")).to_be_visible()
    checkin = page.locator('table#history tbody tr[data-kind="checkin"][data-value="3"]')
    expect(checkin).to_have_count(1)
    expect(checkin).to_contain_text("Berlin and Lisbon meetups")
    with dashboard.demo.store() as store:
        kr = latest_by_ref(store)[ref]
    assert kr.value == Decimal(3)
    assert kr.status and kr.status != before, (before, kr.status, kr.reason)
    expect(page.locator("#kr-status")).to_have_attribute("data-status", kr.status)
    assert TOKEN not in page.content(), "the token is echoed on the page"

    # The overview counts it like a measured value.
    page.goto(dashboard.url + "/")
    row = page.locator(f'tr.kr[data-kr="{ref}"]')
    expect(row).to_have_attribute("data-value", "3")
    expect(row).to_have_attribute("data-status", kr.status)


@pytest.mark.parametrize("token", ["", "not-the-token"], ids=["no-token", "wrong-token"])
def test_a_checkin_without_the_token_is_refused(
    page: Page, dashboard: Dashboard, token: str
) -> None:
    open_form(page, dashboard)
    before = store_snapshot(dashboard.demo.store_url)

    fill(page, value="5", token=token, note="should not be kept")

    expect(page.locator(".flash.error")).to_be_visible()
    expect(page.locator(".flash.ok")).to_have_count(0)
    assert store_snapshot(dashboard.demo.store_url) == before
    page.goto(f"{dashboard.url}/kr/{dashboard.demo.manual_ref}")
    expect(page.locator('table#history tbody tr[data-value="5"]')).to_have_count(0)


@pytest.mark.parametrize(
    ("value", "as_of", "says"),
    [
        ("three", "", "number"),
        ("2", "2001-01-15T09:00:00Z", "cycle"),
    ],
    ids=["not-a-number", "as-of-outside-the-cycle"],
)
def test_a_bad_checkin_says_why_and_changes_nothing(
    page: Page, dashboard: Dashboard, value: str, as_of: str, says: str
) -> None:
    open_form(page, dashboard)
    before = store_snapshot(dashboard.demo.store_url)

    fill(page, value=value, token=TOKEN, as_of=as_of)

    error = page.locator(".flash.error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(says)
    assert "Traceback" not in page.content()
    assert store_snapshot(dashboard.demo.store_url) == before


def test_a_checkin_without_the_forms_csrf_token_is_refused(
    page: Page, dashboard: Dashboard
) -> None:
    """A form posted from another site carries the token a person typed, never the CSRF one."""
    ref = dashboard.demo.manual_ref
    open_form(page, dashboard)
    before = store_snapshot(dashboard.demo.store_url)

    answer = page.request.post(
        f"{dashboard.url}/kr/{ref}/checkin",
        form={"value": "4", "note": "", "as_of": "", "token": TOKEN},
        max_redirects=0,
    )

    assert 400 <= answer.status < 500, answer.status
    assert store_snapshot(dashboard.demo.store_url) == before


def test_a_note_on_a_measured_kr_is_shown_and_changes_no_value(
    page: Page, dashboard: Dashboard
) -> None:
    page.goto(f"{dashboard.url}/kr/{CHART_KR}")
    with dashboard.demo.store() as store:
        before = latest_by_ref(store)[CHART_KR]
    form = page.locator("form#note")
    form.locator("[name=text]").fill("campaign paused this week")
    form.locator("[name=token]").fill(TOKEN)
    submit(form)

    expect(page.locator(".flash.ok")).to_be_visible()
    expect(page.locator("#notes")).to_contain_text("campaign paused this week")
    with dashboard.demo.store() as store:
        after = latest_by_ref(store)[CHART_KR]
    assert (after.value, after.status, after.evaluated_at) == (
        before.value,
        before.status,
        before.evaluated_at,
    )
