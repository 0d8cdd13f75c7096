"""Error classes, the status table, redaction and value conversion."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from okr_pipeline.connectors.errors import (
    FatalSourceError,
    RetriableSourceError,
    SourceConfigError,
    SourceError,
    error_class_for_status,
)
from okr_pipeline.connectors.values import NotANumberError, to_decimal
from okr_pipeline.okr_core.errors import ConfigError, OkrError
from okr_pipeline.okr_core.redaction import Redactor, redact_text, redact_value, truncate


def test_hierarchy():
    assert issubclass(RetriableSourceError, SourceError)
    assert issubclass(FatalSourceError, SourceError)
    assert issubclass(SourceError, OkrError) and not issubclass(SourceError, ConfigError)
    assert issubclass(SourceConfigError, ConfigError)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, FatalSourceError),
        (401, FatalSourceError),
        (403, FatalSourceError),
        (404, FatalSourceError),
        (410, FatalSourceError),
        (422, FatalSourceError),
        (301, FatalSourceError),
        (408, RetriableSourceError),
        (425, RetriableSourceError),
        (429, RetriableSourceError),
        (500, RetriableSourceError),
        (502, RetriableSourceError),
        (503, RetriableSourceError),
        (504, RetriableSourceError),
        (599, RetriableSourceError),
    ],
)
def test_status_table(status: int, expected: type[SourceError]):
    assert error_class_for_status(status) is expected


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("postgresql://bob:hunter2@db/x", [], "postgresql://bob:***@db/x"),
        ("https://u:p@ss@h/x?y=1", [], "https://u:***@h/x?y=1"),
        ("GET /m?token=abc&x=1", [], "GET /m?token=***&x=1"),
        ("/m?API_KEY=abc", [], "/m?API_KEY=***"),
        ("/m?monkey=banana", [], "/m?monkey=banana"),
        ("sig=zz9&access_token=t0k", [], "sig=***&access_token=***"),
        ("Authorization: Bearer abc.def", [], "Authorization: ***"),
        ("sent Bearer abc.def", [], "sent Bearer ***"),
        ("{'x-api-key': 'k3y'}", [], "{'x-api-key': ***}"),
        ("the key is s3cr3t!", ["s3cr3t!"], "the key is ***"),
        ("quoted s3cr3t%21", ["s3cr3t!"], "quoted ***"),
    ],
)
def test_redaction(text: str, secrets: list[str], expected: str):
    assert Redactor(secrets)(text) == expected


def test_redactor_basic_auth_token():
    import base64

    token = base64.b64encode(b"u:pw").decode()
    assert Redactor().with_basic("u", "pw")(f"got {token}") == "got ***"
    assert "pw" not in repr(Redactor(["pw"]))


def test_redact_value_for_repr():
    value = {"Authorization": "Bearer lit", "X-Other": "plain", "Auth": "Bearer ${secret:t}"}
    assert redact_value(value) == {
        "Authorization": "***",
        "X-Other": "plain",
        "Auth": "Bearer ${secret:t}",
    }
    assert redact_value(["https://a:b@h"]) == ["https://a:***@h"]
    assert redact_text("nothing here") == "nothing here"


def test_truncate():
    assert truncate("short") == "short"
    assert truncate("x" * 350) == "x" * 300 + "... (50 more chars)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, Decimal(1)),
        (False, Decimal(0)),
        (7, Decimal(7)),
        (Decimal("1.10"), Decimal("1.10")),
        (0.1, Decimal("0.1")),
        (float("nan"), None),
        (Decimal("NaN"), None),
        ("42.5", Decimal("42.5")),
        (" -3e2 ", Decimal("-3e2")),
        ("NaN", None),
        ("nan", None),
        (b"12", Decimal(12)),
        (".5", Decimal("0.5")),
    ],
)
def test_to_decimal(value: Any, expected: Decimal | None):
    result = to_decimal(value)
    assert result == expected and (result is None or isinstance(result, Decimal))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "is 'abc', not a number"),
        ("1_000", "not a number"),
        ("", "not a number"),
        ("+Inf", "not a finite number"),
        (float("inf"), "not a finite number"),
        (Decimal("-Infinity"), "not a finite number"),
        ({"a": 1}, "an object"),
        ([1], "a list"),
        (object(), "not a number"),
        ("12 apples", "not a number"),
    ],
)
def test_to_decimal_rejects(value: Any, fragment: str):
    with pytest.raises(NotANumberError, match=fragment.replace("+", r"\+")):
        to_decimal(value)
