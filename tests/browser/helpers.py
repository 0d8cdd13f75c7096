"""What the browser tests do on a page: filter, read numbers, wait for the chart."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

#: A number as pages print it: thousands separated by commas or (narrow) no-break spaces.
NUMBER = re.compile("[-\u2212]?\\d(?:[\\d,\u00a0\u202f]*\\d)?(?:\\.\\d+)?")

#: Painted pixels of ``canvas#kr-chart`` (alpha > 0): 0 for a canvas Chart.js did not draw.
PAINTED_PIXELS = """() => {
  const canvas = document.querySelector('canvas#kr-chart');
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return painted;
}"""

#: Every dataset of the Chart.js instance as [[x in ms, y], ...].
CHART_DATASETS = """() => window.okrChart.data.datasets.map(set => ({
  label: String(set.label ?? ''),
  points: (set.data || []).map(p => {
    if (p === null || typeof p !== 'object') return [null, p];
    if (p.x instanceof Date) return [p.x.getTime(), p.y];
    return [typeof p.x === 'string' ? Date.parse(p.x) : p.x, p.y];
  }),
}))"""


def set_filter(page: Page, name: str, value: str) -> None:
    """Choose ``value`` for the overview's filter ``name`` as a person does, wait for the page.

    A choice in a list may apply at once (the page submits on change); otherwise, and for
    a text field, the form's button sends it.
    """
    field = page.locator(f"form#filters [name={name}]")
    before = page.url

    def filtered(url: str) -> bool:
        return url != before and f"{name}=" in url

    if field.evaluate("element => element.tagName") == "SELECT":
        offered = field.evaluate("select => [...select.options].map(option => option.value)")
        assert value in offered, f"the {name} filter offers only {offered}, not {value!r}"
        field.select_option(value)
        try:
            page.wait_for_url(filtered, timeout=3_000)
        except PlaywrightTimeoutError:
            page.locator("form#filters [type=submit]").click()
    else:
        field.fill(value)
        page.locator("form#filters [type=submit]").click()
    page.wait_for_url(filtered)
    page.wait_for_load_state("load")


def shown_numbers(text: str) -> list[Decimal]:
    """The numbers in a piece of page text (thousands separators dropped)."""
    return [
        Decimal(re.sub("[,\u00a0\u202f]", "", match).replace("\u2212", "-"))
        for match in NUMBER.findall(text)
    ]


def shows_value(text: str, value: Decimal) -> bool:
    """Whether ``text`` shows ``value``, rounded to the decimals it is printed with."""
    for number in shown_numbers(text):
        places = max(0, -number.as_tuple().exponent)  # type: ignore[operator]
        if value.quantize(Decimal(1).scaleb(-places)) == number:
            return True
    return False


def parse_time(text: str) -> datetime:
    """An ISO time from the page (``Z`` accepted)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_for_chart(page: Page) -> None:
    """Wait until Chart.js drew the KR's chart and finished animating it."""
    page.wait_for_function("() => window.okrChart !== undefined")
    page.wait_for_function(f"({PAINTED_PIXELS})() > 500")
    page.wait_for_function(
        "() => !(window.Chart && window.Chart.animator"
        " && window.Chart.animator.running(window.okrChart))"
    )


def submit(form: Locator) -> None:
    """Submit a form as its button does, skipping the browser's own checks (the server's
    are under test)."""
    form.evaluate("form => { form.noValidate = true; }")
    form.locator("[type=submit]").first.click()
