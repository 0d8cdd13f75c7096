"""Render the dashboard's pages to HTML (Jinja2 templates in ``web/templates``).

Each ``render_*`` takes the page's model (``web/model.py``) and returns a whole document.
``standalone=True`` inlines the CSS and the chart's JavaScript (no network, no server) and
links KRs to anchors in the same document: the shareable report uses it. Everything is
autoescaped; the chart's data goes into a ``<script type="application/json">`` with ``<``
escaped, so no value can close the element.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from okr_pipeline.web.model import (
    AlertsPage,
    KrDetail,
    KrRow,
    ObjectiveNode,
    OverviewPage,
    RunsPage,
)

__all__ = [
    "STATIC_DIR",
    "TEMPLATE_DIR",
    "Flash",
    "WriteForm",
    "chart_json",
    "kr_href",
    "render_alerts",
    "render_error",
    "render_kr",
    "render_kr_section",
    "render_overview",
    "render_runs",
    "static_text",
]

HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
CHART_JS = "chart.umd.min.js"
SHOWN_DIGITS = 24
#: Up to this many objectives the filter is a list to pick from; beyond, a text field.
OBJECTIVE_CHOICES = 300


@dataclass(frozen=True)
class Flash:
    """A message at the top of a page: ``kind`` is ``ok`` or ``error``."""

    kind: str
    text: str


@dataclass(frozen=True)
class WriteForm:
    """What the KR page's forms need: whether writes are on, and how to sign in.

    Attributes:
        enabled: A token or a user is configured.
        csrf_token: The token to repeat in the form (the cookie holds the same).
        token: The form asks for the token.
        users: The form asks for a user name and password.
    """

    enabled: bool = False
    csrf_token: str = ""
    token: bool = False
    users: bool = False


@cache
def static_text(name: str) -> str:
    """The text of a file in ``web/static`` (for inlining)."""
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def iso(value: datetime | None) -> str:
    """An aware time as ISO 8601 with ``Z`` (the same text the JSON API and chart use)."""
    if value is None:
        return ""
    return value.isoformat().replace("+00:00", "Z")


def when(value: datetime | None) -> str:
    """A time for people: ``2026-11-26 04:05 UTC``."""
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M UTC")


def shown(text: str | None) -> str:
    """An exact stored value rounded for reading (the exact one is in ``title``/``data-``).

    Two decimals from 1 up, four significant digits below; trailing zeros dropped.
    """
    if text is None:
        return "—"
    try:
        value = Decimal(text)
    except ArithmeticError:
        return text
    if not value.is_finite() or abs(value.adjusted()) > SHOWN_DIGITS:
        return text if len(text) <= SHOWN_DIGITS else f"{value:.4g}"
    if value == value.to_integral_value():
        return f"{value:f}".split(".")[0] if "." in f"{value:f}" else f"{value:f}"
    rounded = value.quantize(Decimal("0.01")) if abs(value) >= 1 else Decimal(f"{value:.4g}")
    result = f"{rounded:f}"
    return result.rstrip("0").rstrip(".") if "." in result else result


def number(value: float | None, digits: int = 2) -> str:
    """A score or progress for people; a missing one is a dash, never 0."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    """A progress as a percentage; a missing one is a dash."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.0%}"


def bar_width(value: float | None) -> str:
    """CSS width of a progress bar, clamped to 0-100%."""
    if value is None or not math.isfinite(value):
        return "0%"
    return f"{max(0.0, min(1.0, value)) * 100:.1f}%"


def data_number(value: float | None) -> str:
    """A number for a ``data-`` attribute: full precision, empty when missing."""
    if value is None or not math.isfinite(value):
        return ""
    return repr(value)


def kr_href(ref: str, *, standalone: bool = False, base: str = "") -> str:
    """Where a KR's link goes: its page, or its anchor in a standalone document."""
    if standalone:
        return "#kr-" + quote(ref, safe="/")
    return f"{base}/kr/{quote(ref, safe='/')}"


def chart_json(detail: KrDetail) -> Markup:
    """The chart's data for ``script#chart-data``, safe inside a script element."""
    data = detail.chart.model_dump(mode="json", include=set(_CHART_KEYS))
    text = json.dumps(data, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


_CHART_KEYS = (
    "start",
    "end",
    "unit",
    "measured",
    "baseline",
    "target",
    "pace",
    "forecast",
    "band",
    "notes",
)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        iso=iso,
        shown=shown,
        when=when,
        number=number,
        percent=percent,
        bar_width=bar_width,
        data_number=data_number,
    )
    return env


def _render(template: str, context: Mapping[str, Any], standalone: bool, base: str) -> str:
    env = _environment()
    assets: dict[str, Any] = {}
    if standalone:
        assets = {
            "inline_css": Markup(static_text("okr.css")),
            # "</script" cannot occur in the minified library or our script; escaping it
            # anyway keeps a future edit from ending the element early.
            "inline_js": Markup(
                (static_text(CHART_JS) + "\n" + static_text("okr.js")).replace(
                    "</script", "<\\/script"
                )
            ),
        }
    return env.get_template(template).render(
        standalone=standalone,
        base=base,
        static=f"{base}/static",
        href=lambda ref: kr_href(ref, standalone=standalone, base=base),
        **assets,
        **context,
    )


def _groups(page: OverviewPage) -> list[tuple[ObjectiveNode, list[KrRow]]]:
    rows: dict[str, list[KrRow]] = {}
    for row in page.krs:
        rows.setdefault(row.objective, []).append(row)
    return [(node, rows[node.key]) for node in page.objectives if node.key in rows]


def _page_link(page: OverviewPage, number: int, base: str) -> str:
    params = {
        key: value for key, value in page.filters.model_dump().items() if value not in (None, "")
    }
    params["page"] = str(number)
    return f"{base}/?{urlencode(params)}"


def render_overview(
    page: OverviewPage,
    *,
    standalone: bool = False,
    flashes: Sequence[Flash] = (),
    base: str = "",
) -> str:
    """The overview: filters, the alignment tree with scores, one page of KR rows.

    Args:
        page: From :func:`okr_pipeline.web.overview.overview`.
        standalone: Inline CSS and JS, link KRs to in-page anchors (the report).
        flashes: Messages at the top.
        base: The path the app is served under ("" at the root).
    """
    return _render(
        "overview.html",
        {
            "page": page,
            "groups": _groups(page),
            "flashes": flashes,
            "title": f"OKRs {page.cycle or ''}".strip(),
            "prev_link": _page_link(page, page.page.number - 1, base),
            "next_link": _page_link(page, page.page.number + 1, base),
            "objective_choices": OBJECTIVE_CHOICES,
        },
        standalone,
        base,
    )


def render_kr(
    detail: KrDetail,
    *,
    standalone: bool = False,
    flashes: Sequence[Flash] = (),
    form: WriteForm | None = None,
    base: str = "",
) -> str:
    """One KR's page: status, chart, history, status over time, alerts, definition.

    Args:
        detail: From :func:`okr_pipeline.web.kr_detail.kr_detail`.
        standalone: Inline CSS and JS (the report); no forms.
        flashes: Messages at the top.
        form: The write forms' state (None: read-only).
        base: The path the app is served under.
    """
    return _render(
        "kr.html",
        {
            "d": detail,
            "row": detail.row,
            "flashes": flashes,
            "form": None if standalone else (form or WriteForm()),
            "chart_data": chart_json(detail),
            "title": detail.row.ref,
            "action": f"{base}/kr/{quote(detail.row.ref, safe='/')}",
        },
        standalone,
        base,
    )


def render_kr_section(
    detail: KrDetail, *, history_omitted: int = 0, evaluations_omitted: int = 0
) -> str:
    """One KR's ``section.kr-page`` as the report holds it: in-page links, no forms.

    Rendered alone (not inside a whole standalone page) and with compact table rows: a
    report holds thousands of them under one copy of the CSS and scripts.

    Args:
        detail: From :func:`okr_pipeline.web.kr_detail.kr_detail` (or ``kr_details``).
        history_omitted: Older history rows left out of ``detail``, said under the table.
        evaluations_omitted: Older evaluations left out, said under their table.
    """
    return (
        _environment()
        .get_template("kr_section.html")
        .render(
            standalone=True,
            base="",
            href=lambda ref: kr_href(ref, standalone=True),
            d=detail,
            row=detail.row,
            form=None,
            chart_data=chart_json(detail),
            report={
                "history_omitted": history_omitted,
                "evaluations_omitted": evaluations_omitted,
            },
        )
    )


def render_runs(page: RunsPage, *, standalone: bool = False, base: str = "") -> str:
    """The runs page: each run's as-of, duration, counts, failures and Prefect link."""
    return _render("runs.html", {"page": page, "title": "Runs", "flashes": ()}, standalone, base)


def render_alerts(page: AlertsPage, *, standalone: bool = False, base: str = "") -> str:
    """The alerts page: recent alerts and silences."""
    return _render(
        "alerts.html", {"page": page, "title": "Alerts", "flashes": ()}, standalone, base
    )


def render_error(title: str, message: str, *, base: str = "") -> str:
    """A page that only says what went wrong (unknown KR, no store yet, writes off)."""
    return _render(
        "error.html",
        {"title": title, "flashes": (Flash("error", message),)},
        False,
        base,
    )
