"""Rendering: standalone documents need nothing outside themselves; numbers read well."""

from __future__ import annotations

import re

import pytest

from okr_pipeline.web.kr_detail import kr_detail
from okr_pipeline.web.overview import overview
from okr_pipeline.web.pages import render_kr, render_overview, shown
from tests.browser.served_demo import CHART_KR, FilledDemo
from tests.web.html_parts import chart_data, select

EXTERNAL = re.compile(r"""(?:src|href)=["'](?:https?:)?//""")


def test_standalone_pages_inline_everything(web_demo: FilledDemo):
    with web_demo.store() as store:
        page = overview(store, now=web_demo.clock())
        detail = kr_detail(store, CHART_KR, settings=web_demo.settings, now=web_demo.clock())
    html = render_overview(page, standalone=True)
    assert not EXTERNAL.search(html) and "<link" not in html and "<style>" in html
    assert select(html, "form", id="filters") == []
    links = {e.attrs["href"] for e in select(html, "a", cls="kr-link")}
    assert f"#kr-{CHART_KR}" in links and all(link.startswith("#kr-") for link in links)
    kr = render_kr(detail, standalone=True)
    assert not EXTERNAL.search(kr)
    assert all("src" not in e.attrs for e in select(kr, "script"))
    assert "window.okrChart" in kr and "Chart.js v4" in kr
    assert select(kr, "section", id=f"kr-{CHART_KR}")
    assert chart_data(kr)["measured"] == chart_data(render_kr(detail))["measured"]


def test_chart_data_cannot_close_its_script(web_demo: FilledDemo):
    with web_demo.store() as store:
        detail = kr_detail(store, CHART_KR, now=web_demo.clock())
    hostile = detail.model_copy(
        update={"chart": detail.chart.model_copy(update={"unit": "</script><b>x"})}
    )
    html = render_kr(hostile)
    assert "</script><b>x" not in html
    assert chart_data(html)["unit"] == "</script><b>x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "—"),
        ("2400", "2400"),
        ("100.000", "100"),
        ("3.637883008356546", "3.64"),
        ("1143.6", "1143.6"),
        ("0.0123456", "0.01235"),
        ("-5.5", "-5.5"),
        ("0", "0"),
        ("1E+3", "1000"),
    ],
)
def test_values_are_rounded_for_reading_only(text, expected):
    assert shown(text) == expected
