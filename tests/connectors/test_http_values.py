"""Values out of the range the product stores are the KR's error, never a stored number.

``connectors.values.to_decimal`` (used by every connector) refuses ``abs(value) >= 1e28``
and keeps at most 28 significant digits and 28 decimal places. An API answering
``1e200000`` once broke the PostgreSQL store's COPY for the whole run, and ``1e999999999``
raised ``decimal.Overflow`` in scoring.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.http import HttpSource, HttpSourceConfig
from okr_pipeline.connectors.http_extract import parse_json
from okr_pipeline.connectors.sql import SqlSource, SqlSourceConfig
from okr_pipeline.connectors.values import (
    DECIMAL_PLACES,
    MAX_ABS_VALUE,
    SIGNIFICANT_DIGITS,
    NotANumberError,
    OutOfRangeError,
    to_decimal,
)
from okr_pipeline.okr_core.settings import ConnectionSettings
from okr_pipeline.okr_store.types import DECIMAL_TEXT_LENGTH

LARGEST = Decimal("9999999999999999999999999999")  # 28 nines: the largest value kept


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1e200000", "1e+200000"),
        ("1e999999999", "1e+999999999"),
        ("-1e999999999", "-1e+999999999"),
        (Decimal("1E+999999999999999999"), "1e+999999999999999999"),
        (Decimal("1e28"), "1e+28"),
        ("-1e28", "-1e+28"),
        (10**28, "1.00000e+28"),
        # Past Python's 4300-digit int-to-text limit (hence the explicit id).
        pytest.param(10**5000, "1.00000e+5000", id="10**5000"),
        (1e300, "1e+300"),
        (b"1e200000", "1e+200000"),
        # 32 nines round (half-even, 28 digits) to 1e28: out of range after rounding.
        ("9.9999999999999999999999999999999e27", "1.00000e+28"),
    ],
)
def test_out_of_range_is_refused(value: Any, shown: str):
    with pytest.raises(OutOfRangeError) as info:
        to_decimal(value)
    assert str(info.value) == (
        f"is {shown}, out of the range this product stores (|value| < 1e28); check the "
        "source's unit, or scale the value down in the query or API call"
    )
    assert isinstance(info.value, NotANumberError)  # connectors catch it as they did


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (LARGEST, LARGEST),
        (-LARGEST, -LARGEST),
        ("9.999e27", Decimal("9.999e27")),
        ("12.345678901234567890123", Decimal("12.345678901234567890123")),
        # More than 28 significant digits: rounded half-even to 28.
        ("1.23456789012345678901234567891", Decimal("1.234567890123456789012345679")),
        # Finer than 28 places: rounded; what is left is 0.
        ("1e-30", Decimal(0)),
        ("1e-200000", Decimal(0)),
        ("1.5e-28", Decimal("2e-28")),
        ("0E+999999", Decimal(0)),
        ("-0", Decimal(0)),
    ],
)
def test_in_range_values_are_kept(value: Any, expected: Decimal):
    result = to_decimal(value)
    assert result == expected and str(result) == str(expected)


def test_the_bound_keeps_storage_and_scoring_safe():
    assert MAX_ABS_VALUE == 10**28
    assert SIGNIFICANT_DIGITS == DECIMAL_PLACES == 28
    extremes = [to_decimal(LARGEST), to_decimal(-LARGEST), to_decimal("1e-28")]
    for value in extremes:
        assert value is not None
        # The SQLite store keeps the plain text; PostgreSQL's NUMERIC holds far more.
        assert len(format(value, "f")) <= DECIMAL_TEXT_LENGTH
        # Scoring's arithmetic in the default context, with every signal trapped.
        with decimal.localcontext() as context:
            context.traps.update(dict.fromkeys(context.flags, True))
            context.traps[decimal.Inexact] = context.traps[decimal.Rounded] = False
            progress = (value - Decimal(1)) / (LARGEST + 1 - Decimal(-LARGEST))
            assert abs(progress) <= 1
            assert value * value >= 0
        assert abs(float(value)) < 1e29


def test_huge_numbers_parse_without_crashing():
    data = parse_json(b'{"a": 1e999999999, "b": 1' + b"0" * 5000 + b', "c": -1e-999999999}')
    assert data["a"] == Decimal("1e999999999")
    assert data["b"] == Decimal(10) ** 5000
    with pytest.raises(OutOfRangeError):
        to_decimal(data["a"])
    with pytest.raises(OutOfRangeError):
        to_decimal(data["b"])
    assert to_decimal(data["c"]) == 0


@pytest.mark.usefixtures("cassette")
@pytest.mark.parametrize(
    ("value_path", "shown"),
    [("$.total", "1e+999999999"), ("$.text", "1e+200000")],
)
def test_http_source_refuses_out_of_range(
    http_env: SourceEnvironment, ctx: SourceContext, value_path: str, shown: str
):
    cfg = HttpSourceConfig.model_validate(
        {"type": "http", "connection": "api", "path": "/huge-exponent", "value_path": value_path}
    )
    with HttpSource(http_env) as source:
        with pytest.raises(FatalSourceError) as info:
            source.fetch(cfg, ctx)
        assert f"value at {value_path} is {shown}, out of the range" in str(info.value)
        ok = cfg.model_copy(update={"value_path": "$.ok"})
        assert source.fetch(ok, ctx) == Decimal(7)  # the same answer's sane value is fine


@pytest.mark.parametrize("literal", ["'1e200000'", "'-1e999999999'"])
def test_sql_source_refuses_out_of_range(sqlite_url: str, ctx: SourceContext, literal: str):
    # Every connector converts through to_decimal; SQLite hands back text as it is.
    env = SourceEnvironment(connections={"wh": ConnectionSettings(url=SecretStr(sqlite_url))})
    cfg = SqlSourceConfig.model_validate(
        {"type": "sql", "connection": "wh", "query": f"SELECT {literal} AS value"}
    )
    with SqlSource(env) as source, pytest.raises(FatalSourceError, match="out of the range"):
        source.fetch(cfg, ctx)
