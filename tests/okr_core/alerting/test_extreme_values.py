"""Messages, payloads and the status table hold any finite value, however large or small."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from okr_pipeline.cli.render import format_value
from okr_pipeline.okr_core.alerting.messages import decimal_text, payload, render
from okr_pipeline.okr_core.alerting.model import Notification
from okr_pipeline.okr_core.alerting.routing import Route
from okr_pipeline.okr_store.alerts import payload_json

from .support import kr

HUGE = Decimal("1e999999999")
TINY = Decimal("-2.5e-999999999")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (HUGE, "1e+999999999"),
        (TINY, "-2.5e-999999999"),
        (Decimal("1.50E+40"), "1.50e+40"),  # exact: the digits given are kept
        (Decimal("12.500"), "12.5"),
        (Decimal("-0.00"), "0"),
        (Decimal("123456789012345678901234567890"), "123456789012345678901234567890"),
    ],
)
def test_decimal_text_is_exact_and_short(value: Decimal, text: str) -> None:
    assert decimal_text(value) == text
    assert Decimal(text) == value


def test_a_message_and_its_record_hold_a_huge_value_in_a_moment() -> None:
    started = time.perf_counter()
    note = Notification("off_track", "firing", kr("off_track", value=HUGE, target=TINY), "maya")
    message = render(Route(name="r", owners=["*"], channels=[]), [note], None)
    stored = payload_json(payload(note))
    assert "1e+999999999" in message.body and "-2.5e-999999999" in message.body
    assert (stored["value"], stored["target"]) == ("1e+999999999", "-2.5e-999999999")
    assert time.perf_counter() - started < 1.0  # never a billion digits


def test_status_table_value_of_a_huge_number() -> None:
    assert format_value(HUGE, "ms") == "1e+999999999 ms"
    assert format_value(TINY) == "-2.5e-999999999"
