"""The shareable report: one self-contained HTML file (and optionally a PDF) of a cycle.

The report is the dashboard's overview followed by every KR's page, in one document whose
KR links are in-page anchors (``#kr-<ref>``). It is assembled from the pages the dashboard
renders with ``standalone=True`` (``web/pages.py``): the ``<main>`` of each, under one copy
of the CSS and of the chart's JavaScript, all inlined. Nothing is loaded from the network, so
the file opens from disk or as an e-mail attachment.

A big company's report has thousands of charts: each is drawn when it scrolls into view (or
all at once before printing), by the dashboard's own chart script (``okrDrawChart``).

The PDF is the same HTML printed by Chromium in headless mode (``--pdf``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from markupsafe import escape

from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_core.words import suggest
from okr_pipeline.okr_store.store import Store
from okr_pipeline.web.kr_details import kr_details
from okr_pipeline.web.model import KrDetail, OverviewPage
from okr_pipeline.web.overview import DEFAULT_STALE_AFTER_PERIODS, UnknownCycleError, overview
from okr_pipeline.web.pages import CHART_JS, render_kr_section, render_overview, static_text
from okr_pipeline.web.queries import cycle_key_results
from okr_pipeline.web.store_access import StoreAccess

__all__ = [
    "CHROMIUM_NAMES",
    "Report",
    "ReportError",
    "ReportFiles",
    "build_report",
    "find_chromium",
    "print_pdf",
    "report_name",
    "write_report",
]

#: Executables tried, in order, for ``--pdf``.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PDF_TIMEOUT_SECONDS = 300.0
#: Every KR on one page: the report is not paged like the dashboard.
ALL_ROWS = 1_000_000_000
#: History and status rows shown per KR (the latest of the cycle; the chart has every
#: value): a quarter of weekly values, so that a daily KR does not fill pages.
REPORT_ROWS = 13
#: KRs read from the store at once: a constant number of queries each, bounded memory.
KRS_PER_READ = 500

_BODY = '<body data-draw="%s">'
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

# Draws each KR section's chart with the dashboard's own drawing code (okr.js's
# window.okrDrawChart), from the section's canvas and chart data: one copy of the drawing
# code for the dashboard and the report, as two would drift. The body's data-draw keeps
# okr.js from drawing a chart of its own on load.
_LOADER = """
(function () {
  "use strict";
  var charts = [];
  var draw = function (section) {
    if (section.hasAttribute("data-drawn")) { return; }
    section.setAttribute("data-drawn", "");
    var canvas = section.querySelector("canvas#kr-chart");
    var data = section.querySelector('script#chart-data[type="application/json"]');
    if (!canvas || !data || !window.okrDrawChart) { return; }
    charts.push(window.okrDrawChart(canvas, JSON.parse(data.textContent)));
  };
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.kr-page"));
  var drawAll = function () { sections.forEach(draw); };
  window.okrCharts = charts;
  window.okrDrawAll = drawAll;
  window.addEventListener("beforeprint", drawAll);
  if (document.body.getAttribute("data-draw") === "all" || !("IntersectionObserver" in window)) {
    drawAll();
    return;
  }
  var seen = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (entry.isIntersecting) { seen.unobserve(entry.target); draw(entry.target); }
    });
  }, { rootMargin: "800px 0px" });
  sections.forEach(function (section) { seen.observe(section); });
})();
"""

_DOCUMENT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%(title)s</title>
<style>%(css)s
section.kr-page { border-top: 2px solid var(--line); margin-top: 2.5rem; padding-top: .5rem; }
p.back { margin: 1.5rem 0 0; font-size: 12px; }
@media print { section.kr-page { break-before: page; } p.back { display: none; } }
</style>
</head>
%(body)s
<header class="top">
  <strong class="brand">okr-pipeline</strong>
  <span class="meta">%(heading)s</span>
</header>
<main>
<div id="overview">
%(overview)s
</div>
%(krs)s
</main>
<script>%(chart_js)s</script>
<script>%(okr_js)s</script>
<script>%(loader)s</script>
</body>
</html>
"""


class ReportError(ConfigError):
    """The report cannot be written as asked (unknown cycle, no Chromium for the PDF, ...)."""


@dataclass(frozen=True)
class Report:
    """A rendered report.

    Attributes:
        html: The whole document.
        cycle: The cycle shown (None when the store has no KRs).
        krs: How many KRs it shows.
        generated_at: When it was made (the time it judges staleness at).
    """

    html: str
    cycle: str | None
    krs: int
    generated_at: datetime

    def printable(self) -> str:
        """The same document drawing every chart at once, for printing."""
        return self.html.replace(_BODY % "lazy", _BODY % "all", 1)


@dataclass(frozen=True)
class ReportFiles:
    """The files a report was written to."""

    html: Path
    pdf: Path | None = None


def _main_of(document: str) -> str:
    # Plain string search: a standalone page holds the 200 kB chart library after </main>,
    # which a regular expression would scan backwards for each of thousands of KRs.
    start = document.find("<main")
    start = document.find(">", start) + 1 if start >= 0 else -1
    end = document.rfind("</main>")
    if start <= 0 or end < start:  # the pages module changed its layout: fail loudly
        raise RuntimeError("a rendered page has no <main> element")
    return document[start:end].strip()


def _inline_script(text: str) -> str:
    # "</script" would end the element early; it cannot occur in these scripts, but an
    # escaped one keeps a future edit from breaking every chart.
    return text.replace("</script", "<\\/script")


def _check_filters(page: OverviewPage, objective: str | None, owner: str | None) -> None:
    # A filter that matches nothing is a typo far more often than an empty team: say so
    # rather than write an empty report.
    if objective and objective not in {choice.key for choice in page.objective_choices}:
        keys = [choice.key for choice in page.objective_choices]
        raise ReportError(
            f"No objective '{objective}' in cycle '{page.cycle}'.{suggest(objective, keys)}"
        )
    if owner and owner not in page.owners:
        raise ReportError(
            f"No KR of cycle '{page.cycle}' is owned by '{owner}'.{suggest(owner, page.owners)}"
        )


def _trimmed(detail: KrDetail) -> tuple[KrDetail, int, int]:
    # The report's tables hold the cycle's latest REPORT_ROWS rows; the chart every value.
    def in_cycle(when: datetime) -> bool:
        return detail.cycle_start <= when <= detail.cycle_end

    history = [h for h in detail.history if in_cycle(h.as_of)]
    evaluations = [e for e in detail.evaluations if in_cycle(e.as_of)]
    kept = detail.model_copy(
        update={"history": history[:REPORT_ROWS], "evaluations": evaluations[:REPORT_ROWS]}
    )
    return (
        kept,
        len(detail.history) - len(kept.history),
        len(detail.evaluations) - len(kept.evaluations),
    )


def _sections(
    store: Store, page: OverviewPage, settings: Settings | None, now: datetime
) -> list[str]:
    if page.cycle is None or not page.krs:
        return []
    definitions = cycle_key_results(store, page.cycle)
    krs = [definitions[row.ref] for row in page.krs]
    sections: list[str] = []
    for start in range(0, len(krs), KRS_PER_READ):
        details = kr_details(
            store, krs[start : start + KRS_PER_READ], cycle=page.cycle, settings=settings, now=now
        )
        for detail in details:
            kept, history_omitted, evaluations_omitted = _trimmed(detail)
            # ``#<ref>`` too: the anchor alerts.yaml's report_url links to (report_link).
            sections.append(f'<span id="{escape(detail.row.ref)}"></span>')
            sections.append(
                render_kr_section(
                    kept,
                    history_omitted=history_omitted,
                    evaluations_omitted=evaluations_omitted,
                )
            )
            sections.append('<p class="back"><a href="#overview">↑ Overview</a></p>')
    return sections


def build_report(
    store: Store,
    *,
    cycle: str | None = None,
    objective: str | None = None,
    owner: str | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
    draw_all: bool = False,
) -> Report:
    """Render the report of ``cycle``: the overview, then every KR's page.

    Args:
        store: The store to read.
        cycle: The cycle (default: the one running now, else the newest).
        objective: Only this objective and the objectives under it (a team's part).
        owner: Only the KRs of objectives this person owns.
        settings: For connections' masked URLs and the staleness rule (optional).
        now: The time to judge at (default: now).
        draw_all: Draw every chart when the page opens (for printing), not as it scrolls.

    Returns:
        The report.

    Raises:
        ReportError: ``cycle`` is not in the store, or ``objective`` or ``owner`` is not
            in the cycle.
    """
    now = now or datetime.now(UTC)
    periods = DEFAULT_STALE_AFTER_PERIODS if settings is None else settings.stale_after_periods
    try:
        page = overview(
            store,
            cycle=cycle,
            objective=objective,
            owner=owner,
            page_size=ALL_ROWS,
            now=now,
            stale_after_periods=periods,
        )
    except UnknownCycleError as exc:
        raise ReportError(str(exc)) from exc
    _check_filters(page, objective, owner)
    sections = _sections(store, page, settings, now)
    stamp = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"OKR report {page.cycle}" if page.cycle else "OKR report"
    part = "".join(
        f" · {label} {value}"
        for label, value in (("objective", objective), ("owner", owner))
        if value
    )
    html = _DOCUMENT % {
        "title": escape(title + part),
        "heading": escape(f"{title}{part} · made {stamp} · {len(page.krs)} key results"),
        "css": static_text("okr.css"),
        "body": _BODY % ("all" if draw_all else "lazy"),
        "overview": _main_of(render_overview(page, standalone=True)),
        "krs": "\n".join(sections),
        "chart_js": _inline_script(static_text(CHART_JS)),
        "okr_js": _inline_script(static_text("okr.js")),
        "loader": _inline_script(_LOADER),
    }
    return Report(html=html, cycle=page.cycle, krs=len(page.krs), generated_at=now)


def report_name(
    cycle: str | None, now: datetime, suffix: str = ".html", *, part: str | None = None
) -> str:
    """The report's file name, e.g. ``okr-report-2026-Q4-2026-11-26.html``.

    ``part`` (an objective or an owner the report is limited to) goes after the cycle, so a
    team's report does not replace the whole cycle's: ``okr-report-2026-Q4-grow-...``.
    """
    safe = _UNSAFE_NAME.sub("-", cycle or "").strip("-.") or "okrs"
    if part:
        safe += "-" + (_UNSAFE_NAME.sub("-", part).strip("-.") or "part")
    return f"okr-report-{safe}-{now.astimezone(UTC):%Y-%m-%d}{suffix}"


def _write_atomically(path: Path, text: str) -> None:
    # A report in a shared folder is replaced whole or not at all: a reader never opens
    # half a file, and a failed write leaves yesterday's report in place.
    # (Not mkstemp: its files are private to their owner, and a report is for sharing.)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def find_chromium() -> str:
    """The Chromium (or Chrome) executable on PATH.

    Raises:
        ReportError: None is installed.
    """
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ReportError(
        f"No Chromium found on PATH (looked for {', '.join(CHROMIUM_NAMES)}): install it "
        "(Debian: apt-get install chromium) to print the PDF, or leave out --pdf."
    )


def print_pdf(
    html: Path, pdf: Path, *, chromium: str | None = None, timeout: float = PDF_TIMEOUT_SECONDS
) -> None:
    """Print the HTML file ``html`` to ``pdf`` with headless Chromium.

    Args:
        html: A self-contained HTML file.
        pdf: Where to write the PDF (replaced).
        chromium: The executable (default: :func:`find_chromium`).
        timeout: Seconds to wait for Chromium.

    Raises:
        ReportError: No Chromium, or it failed or produced no PDF.
    """
    executable = chromium or find_chromium()
    pdf.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="okr-chromium-") as profile:
        command = [
            executable,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace to sandbox in
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ReportError(f"Chromium did not print {pdf.name} within {timeout:.0f} s") from exc
        except OSError as exc:
            raise ReportError(f"Cannot start Chromium ({executable}): {exc}") from exc
    if not pdf.exists() or pdf.read_bytes()[:5] != b"%PDF-":
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1].strip() if lines else f"exit code {done.returncode}"
        raise ReportError(f"Chromium did not print {pdf.name}: {why}")


def write_report(
    settings: Settings,
    *,
    cycle: str | None = None,
    objective: str | None = None,
    owner: str | None = None,
    out_dir: Path | None = None,
    pdf: bool = False,
    store: Store | None = None,
    now: datetime | None = None,
) -> ReportFiles:
    """Write the report of ``cycle`` into ``out_dir`` (and its PDF with ``pdf``).

    Args:
        settings: The project's settings (its store; ``report_dir``, relative to the
            project folder, when ``out_dir`` is not given).
        cycle: The cycle (default: the one running now, else the newest).
        objective: Only this objective and the objectives under it.
        owner: Only the KRs of objectives this person owns.
        out_dir: The folder (created when missing); default ``settings.report_dir``, else
            the current folder.
        pdf: Also print the HTML to a PDF with headless Chromium.
        store: An open store to read (default: the project's, opened and closed here).
        now: The time to judge at and to date the files with (default: now).

    Returns:
        The files written, named :func:`report_name`.

    Raises:
        ReportError: Unknown cycle, objective or owner, or no Chromium for ``pdf`` (checked
            before anything is written).
        okr_pipeline.web.store_access.NoStoreError: The project has no store yet.
    """
    now = now or datetime.now(UTC)
    chromium = find_chromium() if pdf else None
    folder = out_dir or (
        settings.project_dir / settings.report_dir if settings.report_dir else Path.cwd()
    )
    access = None
    if store is None:
        access = StoreAccess(settings)
        store = access.get()
    try:
        report = build_report(
            store, cycle=cycle, objective=objective, owner=owner, settings=settings, now=now
        )
    finally:
        if access is not None:
            access.close()
    folder.mkdir(parents=True, exist_ok=True)
    part = "-".join(value for value in (objective, owner) if value) or None
    html_path = folder / report_name(report.cycle, now, part=part)
    _write_atomically(html_path, report.html)
    if not pdf:
        return ReportFiles(html=html_path)
    pdf_path = html_path.with_suffix(".pdf")
    with tempfile.TemporaryDirectory(prefix="okr-report-") as scratch:
        page = Path(scratch) / html_path.name
        page.write_text(report.printable(), encoding="utf-8")
        print_pdf(page, pdf_path, chromium=chromium)
    return ReportFiles(html=html_path, pdf=pdf_path)
