"""The shareable report: one self-contained HTML file with the store's numbers, and its PDF.

The demo's store is filled by a cycle of weekly runs (the browser tests' ``filled_demo``);
the report is built with the clock fixed a minute after the last run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from okr_pipeline.okr_store.records import StatusRow
from okr_pipeline.web.report import (
    Report,
    ReportError,
    build_report,
    find_chromium,
    report_name,
    write_report,
)
from tests.browser.served_demo import FilledDemo, filled_demo, latest_by_ref
from tests.conftest import REQUIRE_DB

#: A password in a connection's URL: it must never reach the report.
PASSWORD = "pw-report-S3cret"


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]


class Elements(HTMLParser):
    """Every start tag of a document with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append(Element(tag, {name: value or "" for name, value in attrs}))

    def select(self, tag: str, **wanted: str) -> list[Element]:
        return [
            e
            for e in self.found
            if e.tag == tag
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in wanted.items())
        ]


def _parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


@dataclass
class Built:
    demo: FilledDemo
    report: Report
    stored: dict[str, StatusRow]
    elements: Elements


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    directory = tmp_path_factory.mktemp("report") / "demo"
    with pytest.MonkeyPatch.context() as monkeypatch, filled_demo(directory, monkeypatch) as demo:
        url = demo.settings.connections["analytics"].url.get_secret_value()
        monkeypatch.setenv(
            "OKR_CONNECTIONS__ANALYTICS__URL", url.replace("http://", f"http://ops:{PASSWORD}@")
        )
        from okr_pipeline.okr_core.settings import load_settings

        settings = load_settings(demo.project)
        with demo.store() as store:
            report = build_report(store, settings=settings, now=demo.clock())
            stored = latest_by_ref(store)
        yield Built(demo, report, stored, _parse(report.html))


# A resource the browser would fetch: src/href/srcset/poster/data attributes, CSS url() and
# @import. Links to other documents count too: the report is one file.
RESOURCE = re.compile(
    r"""(?:\b(?:src|href|srcset|poster|data|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//)"""
    r"""|(?:url\(\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//)|@import""",
    re.IGNORECASE,
)


def test_the_file_loads_nothing_from_the_network(built: Built) -> None:
    html = built.report.html
    assert not RESOURCE.search(html), RESOURCE.search(html)
    elements = built.elements
    assert not elements.select("link"), "styles are inlined"
    assert all("src" not in e.attrs for e in elements.select("script")), "scripts are inlined"
    assert not elements.select("img") and not elements.select("iframe")
    # Chart.js and the chart script are in the file.
    assert "Chart" in html and "chart-data" in html
    # Every link is an anchor in the same document, and every anchor exists.
    ids = {e.attrs["id"] for e in elements.found if "id" in e.attrs}
    hrefs = [e.attrs["href"] for e in elements.select("a")]
    assert hrefs and all(h.startswith("#") for h in hrefs), [h for h in hrefs if h[:1] != "#"]
    from urllib.parse import unquote

    assert {unquote(h[1:]) for h in hrefs} <= ids


def test_every_kr_is_there_with_the_number_the_store_holds(built: Built) -> None:
    assert built.report.krs == len(built.stored) >= 8
    for ref, kr in built.stored.items():
        (row,) = built.elements.select("tr", data_kr=ref)
        shown = row.attrs["data-value"]
        if kr.value is None:
            assert shown == "", ref
        else:
            assert Decimal(shown) == kr.value, (ref, shown, kr.value)
        assert row.attrs["data-status"] == (kr.status or "none"), ref
        (section,) = built.elements.select("section", id=f"kr-{ref}")
        assert section.attrs["data-kr"] == ref


def test_each_kr_has_its_chart_and_history_from_the_store(built: Built) -> None:
    charts = re.findall(
        r'<section class="kr-page" id="kr-([^"]+)".*?'
        r'<script id="chart-data" type="application/json">(.*?)</script>',
        built.report.html,
        re.DOTALL,
    )
    assert {ref for ref, _ in charts} == set(built.stored)
    with built.demo.store() as store:
        for ref, data in charts:
            kr = next(k for k in store.active_key_results(built.demo.now) if k.ref == ref)
            good = [
                m
                for m in store.measurements([kr.kr_id])
                if m.value is not None and m.as_of <= built.demo.clock()
            ]
            points = json.loads(data)["measured"]
            assert sorted(Decimal(str(p["y"])) for p in points) == sorted(
                Decimal(str(float(m.value))) for m in good
            ), ref


def test_no_secret_is_in_the_report(built: Built) -> None:
    html = built.report.html
    assert PASSWORD not in html
    for secret in built.demo.settings.secrets.values():
        assert secret.get_secret_value() not in html
    # The connection's URL is shown, its password masked.
    assert "http://ops:***@127.0.0.1" in html


def test_the_file_is_named_for_its_cycle_and_day(built: Built) -> None:
    assert report_name("2026-Q4", datetime.fromisoformat("2026-11-26T23:59:00+00:00")) == (
        "okr-report-2026-Q4-2026-11-26.html"
    )
    assert report_name("a/b c", built.demo.now).startswith("okr-report-a-b-c-")
    assert report_name(None, built.demo.now).startswith("okr-report-okrs-")


def test_an_unknown_cycle_is_one_line(built: Built) -> None:
    with built.demo.store() as store, pytest.raises(ReportError) as info:
        build_report(store, cycle="1999-Q1", now=built.demo.clock())
    message = str(info.value)
    assert "1999-Q1" in message and "2026" in message and "\n" not in message


def _chromium() -> str:
    try:
        return find_chromium()
    except ReportError as exc:
        if REQUIRE_DB:
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def test_the_report_draws_every_chart_offline_in_a_browser(built: Built, tmp_path: Path) -> None:
    from playwright.sync_api import Route, sync_playwright

    path = tmp_path / "report.html"
    path.write_text(built.report.html, encoding="utf-8")
    requests: list[str] = []
    errors: list[str] = []

    def only_the_file(route: Route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    def in_browser() -> Any:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=_chromium(), args=["--no-sandbox", "--headless=new"]
            )
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                page.route("**/*", only_the_file)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(path.as_uri())
                sections = page.locator("section.kr-page")
                count = sections.count()
                assert count == len(built.stored)
                # Charts are drawn as they come into view: not all at once on a long report.
                assert page.evaluate("window.okrCharts.length") < count
                # By the dashboard's own entry point; none drawn by the KR page's hook on load.
                assert page.evaluate("typeof window.okrDrawChart") == "function"
                assert page.evaluate("window.okrChart === undefined")
                last = sections.nth(count - 1)
                last.scroll_into_view_if_needed()
                page.wait_for_function(
                    f"document.querySelectorAll('section.kr-page')[{count - 1}]"
                    ".hasAttribute('data-drawn')"
                )
                page.evaluate("window.okrDrawAll()")
                drawn = page.evaluate(
                    """() => Array.from(document.querySelectorAll('section.kr-page')).map(s => {
                        const chart = Chart.getChart(s.querySelector('canvas'));
                        return [s.dataset.kr, chart ? chart.data.datasets[0].data.length : -1];
                    })"""
                )
            finally:
                browser.close()
        return drawn

    # Playwright's sync API refuses a thread with a running asyncio loop, which an earlier
    # test in the same worker may leave behind: a fresh thread has none.
    with ThreadPoolExecutor(max_workers=1) as pool:
        drawn = pool.submit(in_browser).result()
    assert not errors, errors
    assert not requests, requests
    for ref, points in drawn:
        data = re.search(
            f'id="kr-{re.escape(ref)}"'
            r'.*?<script id="chart-data" type="application/json">(.*?)</script>',
            built.report.html,
            re.DOTALL,
        )
        assert data is not None
        assert points == len(json.loads(data[1])["measured"]), ref


def test_the_pdf_has_pages(built: Built, tmp_path: Path) -> None:
    _chromium()
    files = write_report(built.demo.settings, out_dir=tmp_path, pdf=True, now=built.demo.clock())
    assert files.pdf is not None and files.html.exists()
    assert files.pdf.name == files.html.name.removesuffix(".html") + ".pdf"
    data = files.pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    # The overview and at least a page per KR.
    assert pages > len(built.stored), pages


def _without_chromium(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds only Python (no Chromium to be found)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return {**os.environ, "PATH": str(bin_dir)}


def test_no_chromium_is_one_line_and_writes_nothing(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ReportError) as info:
        write_report(built.demo.settings, out_dir=tmp_path / "out", pdf=True)
    assert "\n" not in str(info.value) and "chromium" in str(info.value).lower()
    assert not (tmp_path / "out").exists()


def _okr(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    okr = shutil.which("okr", path=str(Path(sys.executable).parent))
    assert okr is not None
    return subprocess.run(
        [okr, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd, check=False
    )


def test_the_command_writes_the_report_and_says_where(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    done = _okr("report", "--project", str(built.demo.project), "--out", str(out))
    assert done.returncode == 0, done.stderr
    (written,) = out.iterdir()
    assert written.name.startswith("okr-report-") and written.suffix == ".html"
    assert str(written) in " ".join(done.stdout.split())
    elements = _parse(written.read_text(encoding="utf-8"))
    assert {e.attrs["data-kr"] for e in elements.select("tr") if "data-kr" in e.attrs} == set(
        built.stored
    )


def test_the_command_without_chromium_says_so_in_one_line(built: Built, tmp_path: Path) -> None:
    env = _without_chromium(tmp_path)
    out = tmp_path / "reports"
    done = _okr("report", "--pdf", "--project", str(built.demo.project), "--out", str(out), env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: No Chromium"), done.stderr
    assert not out.exists()


def test_the_command_with_an_unknown_cycle_says_which_exist(built: Built) -> None:
    done = _okr("report", "--cycle", "1999-Q1", "--project", str(built.demo.project))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: No cycle '1999-Q1' in the store. Cycles: "
        + ", ".join(sorted({r.cycle for r in built.stored.values()}))
        + "."
    ]


def test_out_naming_a_file_is_one_line(built: Built, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    done = _okr("report", "--project", str(built.demo.project), "--out", str(taken))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"Error: --out {taken} is a file, not a folder"]


def _section_refs(html: str) -> set[str]:
    return set(re.findall(r'<section class="kr-page" id="kr-([^"]+)"', html))


def _subtree(root: str, stored: dict[str, StatusRow]) -> set[str]:
    keys, grew = {root}, True
    while grew:
        more = {r.objective_key for r in stored.values() if r.parent_key in keys} - keys
        keys |= more
        grew = bool(more)
    return {ref for ref, row in stored.items() if row.objective_key in keys}


def _team(stored: dict[str, StatusRow]) -> str:
    """An objective under another: its subtree is a part of the cycle, not all of it."""
    return sorted({row.objective_key for row in stored.values() if row.parent_key})[0]


def test_a_report_of_one_objective_holds_its_subtree(built: Built) -> None:
    root = _team(built.stored)
    expected = _subtree(root, built.stored)
    assert expected and expected != set(built.stored)
    with built.demo.store() as store:
        report = build_report(store, objective=root, now=built.demo.clock())
    assert _section_refs(report.html) == expected
    assert report.krs == len(expected)
    assert f"objective {root}" in report.html
    overview_rows = {
        e.attrs["data-kr"] for e in _parse(report.html).select("tr") if "data-kr" in e.attrs
    }
    assert overview_rows == expected


def test_a_report_of_one_owner_holds_their_krs(built: Built) -> None:
    owner = sorted({row.owner for row in built.stored.values()})[0]
    expected = {ref for ref, row in built.stored.items() if row.owner == owner}
    with built.demo.store() as store:
        report = build_report(store, owner=owner, now=built.demo.clock())
    assert _section_refs(report.html) == expected and report.krs == len(expected)


def test_a_filter_matching_nothing_is_one_line(built: Built) -> None:
    objective = next(iter(built.stored.values())).objective_key
    with built.demo.store() as store:
        with pytest.raises(ReportError) as info:
            build_report(store, objective=objective + "x", now=built.demo.clock())
        assert f"No objective '{objective}x'" in str(info.value)
        assert repr(objective) in str(info.value) and "\n" not in str(info.value)
        with pytest.raises(ReportError, match=re.escape("owned by 'nobody@example.com'")):
            build_report(store, owner="nobody@example.com", now=built.demo.clock())


def test_the_tables_hold_the_latest_rows_and_say_how_many_are_left_out(
    built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    import okr_pipeline.web.report as report_module

    monkeypatch.setattr(report_module, "REPORT_ROWS", 2)
    with built.demo.store() as store:
        html = build_report(store, now=built.demo.clock()).html
    sections = re.findall(r'<section class="kr-page".*?</section>', html, re.DOTALL)
    assert len(sections) == len(built.stored)
    cut = 0
    for section in sections:
        history = re.search(r'<table id="history".*?</table>', section, re.DOTALL)
        assert history is not None
        as_ofs = re.findall(r'<tr data-as-of="([^"]+)"', history[0])
        assert len(as_ofs) <= 2 and as_ofs == sorted(as_ofs, reverse=True)
        if "earlier rows not shown here: the chart has every value" in section:
            cut += 1
            # The chart still has every value.
            data = re.search(
                r'<script id="chart-data" type="application/json">(.*?)</script>', section
            )
            assert data is not None and len(json.loads(data[1])["measured"]) > 2
    assert cut >= len(built.stored) - 2


def test_the_command_writes_a_teams_report_beside_the_cycles(built: Built, tmp_path: Path) -> None:
    root = _team(built.stored)
    out = tmp_path / "reports"
    done = _okr(
        "report", "--objective", root, "--project", str(built.demo.project), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    (written,) = out.iterdir()
    assert written.name.startswith("okr-report-") and f"-{root}-" in written.name
    assert _section_refs(written.read_text(encoding="utf-8")) == _subtree(root, built.stored)
    done = _okr("report", "--owner", "nobody@example.com", "--project", str(built.demo.project))
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: No KR of cycle") and "nobody@example.com" in line
