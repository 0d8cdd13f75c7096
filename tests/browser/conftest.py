"""Fixtures of the browser tests: Debian's chromium driven headless by Playwright, the demo's
dashboard served for real, and where screenshots go.

No browser is downloaded: Playwright starts the ``chromium`` on the PATH (Debian's package,
installed by ``.ci/run``). Without it these tests skip, unless ``OKR_REQUIRE_DB=1`` (CI),
where they fail, as the database and Prometheus tests do.

Every page a test opens may load only what the dashboard itself serves: any request to
another host is aborted and fails the test (the dashboard must work offline).

Screenshots go to a temporary folder, or into ``docs/screenshots/`` (shown by the README)
with ``OKR_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.browser.served_demo import FilledDemo, filled_demo, serving
from tests.conftest import REQUIRE_DB

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Read once at import: the demo fixtures clear every OKR_ variable while they run.
SAVE_SCREENSHOTS = os.environ.get("OKR_SCREENSHOTS") == "1"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# The whole suite runs on up to 4 processes on small machines: give assertions time.
expect.set_options(timeout=15_000)


def chromium_path() -> str | None:
    """Debian's chromium, if installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """A headless chromium for the whole session (one per test process)."""
    path = chromium_path()
    if path is None:
        message = "chromium not found on PATH (Debian: apt-get install chromium)"
        if REQUIRE_DB:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        # --no-sandbox: the tests may run as root in a container, where the sandbox cannot start.
        browser = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--headless=new"]
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Dashboard:
    """The demo's dashboard, served on a free port."""

    url: str
    demo: FilledDemo


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The demo's dashboard with a check-in token, its clock fixed a minute after the last run.

    One per test module: the check-in tests write to its store, the others read the store
    again whenever they compare.
    """
    from okr_pipeline.web.app import create_app

    directory = tmp_path_factory.mktemp("dashboard") / "demo"
    with pytest.MonkeyPatch.context() as monkeypatch, filled_demo(directory, monkeypatch) as demo:
        app = create_app(demo.settings, clock=demo.clock)
        with serving(app) as url:
            yield Dashboard(url=url, demo=demo)


@dataclass
class OffsiteRequests:
    """Requests a page tried to send to other hosts (all aborted)."""

    urls: list[str] = field(default_factory=list)

    def block(self, route: Route) -> None:
        """Let local requests through; abort and remember any other."""
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.urls.append(route.request.url)
            route.abort()


@pytest.fixture
def offsite() -> OffsiteRequests:
    """What the test's page tried to load from elsewhere (checked after each test)."""
    return OffsiteRequests()


@pytest.fixture
def page(browser: Browser, offsite: OffsiteRequests) -> Iterator[Page]:
    """A fresh page (own cookies), offline but for the local dashboard."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    context.route("**/*", offsite.block)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert offsite.urls == [], f"the page asked for other hosts: {offsite.urls}"
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``docs/screenshots`` with ``OKR_SCREENSHOTS=1``, else tmp."""
    if SAVE_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path
