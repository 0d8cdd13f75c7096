"""The dashboard works with no network: nothing is loaded from another host (the ``page``
fixture aborts and reports any such request), so the chart draws offline. Its screenshots for the
README are taken here."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from tests.browser.conftest import LOCAL_HOSTS, Dashboard, OffsiteRequests
from tests.browser.helpers import wait_for_chart
from tests.browser.served_demo import CHART_KR

#: Every address a page names for something it loads by itself.
LOADED_URLS = """() => [
  ...[...document.querySelectorAll('script[src], img[src], iframe[src]')].map(e => e.src),
  ...[...document.querySelectorAll('link[href]')].filter(e => e.rel !== 'canonical')
      .map(e => e.href),
]"""


def test_pages_load_nothing_from_other_hosts(
    page: Page, dashboard: Dashboard, offsite: OffsiteRequests
) -> None:
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    for path in ("/", f"/kr/{CHART_KR}", f"/kr/{dashboard.demo.manual_ref}", "/runs", "/alerts"):
        answer = page.goto(dashboard.url + path)
        assert answer is not None and answer.ok, (path, answer and answer.status)
        page.wait_for_load_state("networkidle")
        for url in page.evaluate(LOADED_URLS):
            assert urlsplit(url).hostname in LOCAL_HOSTS, f"{path} loads {url}"
    assert offsite.urls == []
    assert loaded and all(urlsplit(url).hostname in LOCAL_HOSTS for url in loaded)


def test_screenshots_of_the_overview_and_a_kr(
    page: Page, dashboard: Dashboard, screenshot_dir: Path
) -> None:
    """``OKR_SCREENSHOTS=1`` writes them into docs/screenshots/ (the README shows them)."""
    page.goto(dashboard.url + "/")
    expect(page.locator("tr.kr").first).to_be_visible()
    overview = screenshot_dir / "overview.png"
    page.screenshot(path=str(overview), full_page=True)

    # The top of the page: headline, chart and history (the definition below it names the
    # test's temporary folder).
    page.set_viewport_size({"width": 1280, "height": 1100})
    page.goto(f"{dashboard.url}/kr/{CHART_KR}")
    wait_for_chart(page)
    kr = screenshot_dir / "kr.png"
    page.screenshot(path=str(kr))

    for shot in (overview, kr):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 10_000, f"{shot.name} looks empty"
