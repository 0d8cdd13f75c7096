"""The ``plausible`` connector against a local server in the Stats API v2's documented shapes.

Shapes from https://plausible.io/docs/stats-api (``POST /api/v2/query``, bearer API key,
``site_id`` / ``metrics`` / ``date_range``; the answer's ``results[].metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.plausible import (
    PlausibleSource,
    PlausibleSourceConfig,
    plausible_body,
)
from tests.connectors.analytics_b.conftest import AnalyticsContract, environment

WRONG = "plk-wrong-0a9e3b71-SECRET"
CTX = SourceContext(
    as_of=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
    cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
    kr_ref="growth/visitors",
)


VALID: dict[str, Any] = {
    "type": "plausible",
    "connection": "analytics",
    "site_id": "shop.example",
    "metric": "visitors",
    "api_key_secret": "plausible_key",
}


def config(**overrides: Any) -> PlausibleSourceConfig:
    return PlausibleSourceConfig.model_validate({**VALID, "retries": 0, **overrides})


class TestPlausibleContract(AnalyticsContract):
    source_class = PlausibleSource
    expected_value = Decimal(1234)
    wrong_secret = WRONG
    valid = VALID
    failures: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "timeout": {"site_id": "slow.example", "timeout_seconds": 0.3},
        "rate_limited": {"site_id": "busy.example"},
        "server_error": {"site_id": "down.example"},
        "unauthorized": {"api_key_secret": "wrong"},
        "bad_shape": {"site_id": "odd.example"},
    }


@pytest.mark.parametrize(
    ("period", "date_range"),
    [
        ("cycle", ["2024-04-01T00:00:00+00:00", "2024-05-01T12:00:00+00:00"]),
        ("1d", ["2024-04-30T12:00:00+00:00", "2024-05-01T12:00:00+00:00"]),
        ("7d", ["2024-04-24T12:00:00+00:00", "2024-05-01T12:00:00+00:00"]),
        ("30d", ["2024-04-01T12:00:00+00:00", "2024-05-01T12:00:00+00:00"]),
        ("90d", ["2024-02-01T12:00:00+00:00", "2024-05-01T12:00:00+00:00"]),
    ],
)
def test_the_window_ends_at_the_as_of(period: str, date_range: list[str]) -> None:
    body = plausible_body(config(period=period), CTX)
    assert body == {"site_id": "shop.example", "metrics": ["visitors"], "date_range": date_range}


def test_filters_are_sent_as_given() -> None:
    filters = [["is", "event:goal", ["Signup"]], ["contains", "event:page", ["/blog"]]]
    assert plausible_body(config(filters=filters), CTX)["filters"] == filters


def test_as_of_before_the_cycle_start_is_an_empty_window() -> None:
    early = SourceContext(CTX.cycle_start, CTX.cycle_start, CTX.cycle_end, CTX.kr_ref)
    assert plausible_body(config(), early)["date_range"] == ["2024-04-01T00:00:00+00:00"] * 2


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, Decimal(1234)),
        ({"metric": "pageviews", "period": "7d"}, Decimal(5678)),
        ({"metric": "conversion_rate"}, Decimal("3.2")),
        ({"site_id": "empty.example"}, None),
    ],
    ids=["visitors", "pageviews-7d", "conversion-rate", "no-row"],
)
def test_fetch(
    overrides: dict[str, Any],
    expected: Decimal | None,
    analytics_env: SourceEnvironment,
    analytics_cassette: Any,
) -> None:
    with PlausibleSource(analytics_env) as source:
        value = source.fetch(config(**overrides), CTX)
    assert value == expected and (value is None or type(value) is Decimal)
    assert analytics_cassette.play_count == 1 or analytics_cassette.dirty  # replayed, or recorded


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"site_id": "split.example"}, "2 result rows in the answer, expected one"),
        ({"site_id": "odd.example"}, "results[0] has no 'metrics' (keys: dimensions)"),
        ({"site_id": "unknown.example"}, "HTTP 400"),
        ({"metric": "events", "api_key_secret": "posthog_key"}, "HTTP 401"),
    ],
    ids=["two-rows", "no-metrics", "unknown-site", "wrong-key"],
)
def test_errors_are_fatal_and_name_the_kr(
    overrides: dict[str, Any],
    message: str,
    analytics_env: SourceEnvironment,
    analytics_cassette: Any,
) -> None:
    with PlausibleSource(analytics_env) as source, pytest.raises(FatalSourceError) as caught:
        source.fetch(config(**overrides), CTX)
    assert message in str(caught.value)
    assert str(caught.value).startswith("KR growth/visitors: plausible source POST ")


def test_the_default_base_is_plausible_io() -> None:
    source = PlausibleSource(environment("http://unused.invalid"))
    raw = config().model_dump(exclude={"connection"})
    call = source.build_call(
        PlausibleSourceConfig.model_validate(raw),
        CTX,
        PlausibleSource.default_base_url,
        {"plausible_key": "k"},
    )
    assert call.url == "https://plausible.io/api/v2/query"
    assert call.headers == {"Authorization": "Bearer k"} and call.method == "POST"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metric": "users"}, "'visitors', 'visits', 'pageviews'"),
        ({"period": "2w"}, "'cycle', '1d', '7d', '28d', '30d' or '90d'"),
        ({"site_id": ""}, "site_id"),
        ({"api_key_secret": "not a name"}, "is not a secret name"),
        ({"filters": "is event:goal"}, "filters"),
    ],
)
def test_config_messages(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        config(**overrides)
    assert message in str(caught.value)
