"""The ``datadog`` connector against a local server answering like Datadog.

Shapes from "Query timeseries points"
(https://docs.datadoghq.com/api/latest/metrics/query-timeseries-points/): ``GET
/api/v1/query`` with ``from``/``to`` in Unix seconds and ``query``, the ``DD-API-KEY`` and
``DD-APPLICATION-KEY`` headers, ``series[].pointlist`` of ``[milliseconds, value]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from okr_pipeline.connectors.api_source import ShapeError
from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.datadog import DatadogSource, DatadogSourceConfig
from okr_pipeline.connectors.errors import FatalSourceError
from tests.connectors.analytics_c import server
from tests.connectors.analytics_c.conftest import NOW
from tests.connectors.analytics_c.contract import VendorContract

SECRETS = {"dd_api": server.DD_API_KEY, "dd_app": server.DD_APP_KEY}


def dd(**fields: Any) -> DatadogSourceConfig:
    raw = {
        "type": "datadog",
        "connection": "local",
        "query": "avg:web.hits{env:prod}",
        "api_key_secret": "dd_api",
        "application_key_secret": "dd_app",
        "retries": 1,
        **fields,
    }
    return DatadogSourceConfig.model_validate(raw)


def source(env: SourceEnvironment) -> DatadogSource:
    return DatadogSource(env, sleep=lambda seconds: None)


class TestDatadogContract(VendorContract):
    source_class = DatadogSource
    expected_value = Decimal(12)
    secrets = SECRETS
    trigger_field = "query"
    triggers: ClassVar[Mapping[str, str]] = {
        "timeout": "avg:slow{*}",
        "rate_limited": "avg:busy{*}",
        "server_error": "avg:down{*}",
        "bad_shape": "avg:odd{*}",
    }

    def valid_config(self) -> Mapping[str, Any]:
        return dd().model_dump(exclude_defaults=True) | {"type": "datadog"}

    def wrong_credentials(self) -> SourceEnvironment:
        return self.environment_with(dd_app="dd-wrong-5a2c8e1b-SECRET")


# The day before the as-of (30 April 12:00 to 1 May 12:00): hourly points whose value is
# the hour, 25 of them, less the gap at 06:00: 12..23 and 0..12 without 6.
DAY = [*range(12, 24), *range(0, 6), *range(7, 13)]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, Decimal(12)),  # last
        ({"reduce": "avg"}, Decimal(sum(DAY)) / len(DAY)),
        ({"reduce": "max"}, Decimal(23)),
        ({"reduce": "min"}, Decimal(0)),
        ({"reduce": "sum"}, Decimal(sum(DAY))),
        # Seven days of hourly 5s: 7 * 24 + 1 points, less seven gaps.
        ({"query": "sum:web.queue{*}", "period": "7d", "reduce": "sum"}, Decimal(5 * 162)),
        ({"query": "avg:web.none{*}"}, None),  # no series: no data
    ],
    ids=["last", "avg", "max", "min", "sum", "sum-7d", "no-series"],
)
def test_fetch(
    env: SourceEnvironment,
    ctx: SourceContext,
    cassette: Any,
    fields: dict[str, Any],
    expected: Decimal | None,
) -> None:
    with source(env) as dd_source:
        assert dd_source.fetch(dd(**fields), ctx) == expected


def test_avg_is_exact() -> None:
    assert Decimal(sum(DAY)) / len(DAY) == Decimal("11.75")


def test_request_shape(env: SourceEnvironment, ctx: SourceContext) -> None:
    with source(env) as dd_source:
        call = dd_source.build_call(dd(period="7d"), ctx, "https://api.datadoghq.eu", SECRETS)
    assert (call.method, call.url) == ("GET", "https://api.datadoghq.eu/api/v1/query")
    assert dict(call.params) == {
        "from": str(int(NOW) - 7 * 86400),
        "to": str(int(NOW)),
        "query": "avg:web.hits{env:prod}",
    }
    assert call.headers["DD-API-KEY"] == server.DD_API_KEY
    assert call.headers["DD-APPLICATION-KEY"] == server.DD_APP_KEY


def test_cycle_starts_at_the_cycle(env: SourceEnvironment, ctx: SourceContext) -> None:
    with source(env) as dd_source:
        call = dd_source.build_call(dd(period="cycle"), ctx, "x", SECRETS)
    assert call.params["from"] == str(int(ctx.cycle_start.timestamp()))


def test_several_series_are_an_error(
    env: SourceEnvironment, ctx: SourceContext, cassette: Any
) -> None:
    with source(env) as dd_source, pytest.raises(FatalSourceError) as caught:
        dd_source.fetch(dd(query="avg:web.hits{*} by {host}"), ctx)
    message = str(caught.value)
    assert "KR growth/kr: datadog source GET" in message
    assert "2 series in the answer (host:a, host:b), expected one" in message


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"status": "error", "error": "Rate of query too high"}, "Rate of query too high"),
        ({"status": "ok", "series": [{"points": []}]}, "has no 'pointlist' (keys: points)"),
        ({"status": "ok", "series": [{"pointlist": [[1, 2, 3]]}]}, "not a [timestamp, value]"),
        ({"status": "ok", "series": [{"pointlist": [[1, "x"]]}]}, "not a pair of numbers"),
        ({"status": "ok", "res_type": "time_series"}, "has no 'series'"),
    ],
    ids=["error-status", "no-pointlist", "triple", "text-value", "no-series"],
)
def test_read_value_shapes(
    env: SourceEnvironment, ctx: SourceContext, answer: Any, expected: str
) -> None:
    with source(env) as dd_source, pytest.raises(ShapeError, match=re.escape(expected)):
        dd_source.read_value(dd(), ctx, answer)


def test_only_gaps_is_no_data(env: SourceEnvironment, ctx: SourceContext) -> None:
    answer = {"series": [{"pointlist": [[Decimal(1), None], [Decimal(2), None]]}]}
    with source(env) as dd_source:
        assert dd_source.read_value(dd(reduce="sum"), ctx, answer) is None


def test_last_is_the_latest_point_whatever_the_order(
    env: SourceEnvironment, ctx: SourceContext
) -> None:
    answer = {"series": [{"pointlist": [[Decimal(2), Decimal(7)], [Decimal(1), Decimal(3)]]}]}
    with source(env) as dd_source:
        assert dd_source.read_value(dd(), ctx, answer) == Decimal(7)


def test_wrong_keys_are_fatal_without_the_keys(env: SourceEnvironment, ctx: SourceContext) -> None:
    wrong = SourceEnvironment(
        connections=env.connections,
        secrets={
            "dd_api": SecretStr("dd-nokey-8f3b1d7c-SECRET"),
            "dd_app": env.secrets["dd_app"],
        },
    )
    with source(wrong) as dd_source, pytest.raises(FatalSourceError) as caught:
        dd_source.fetch(dd(), ctx)
    assert "HTTP 403" in str(caught.value) and "Forbidden" in str(caught.value)
    for secret in ("dd-nokey-8f3b1d7c-SECRET", server.DD_APP_KEY):
        assert secret not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"reduce": "median"}, "reduce"),
        ({"query": ""}, "query"),
        ({"period": "1h"}, "period"),
        ({"api_key_secret": "9lives"}, "is not a secret name"),
    ],
)
def test_config_validation_messages(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        dd(**fields)
    assert expected in str(caught.value)
