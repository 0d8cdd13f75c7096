"""The ``amplitude`` connector against a local server answering like Amplitude.

Shapes from the Dashboard REST API's event segmentation
(https://amplitude.com/docs/apis/analytics/dashboard-rest): ``GET
/api/2/events/segmentation`` with ``e``, ``m``, ``start``/``end`` (``YYYYMMDD``) and ``i``,
HTTP Basic with the API key and the secret key, ``data.seriesCollapsed`` in the answer.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from okr_pipeline.connectors.amplitude import AmplitudeSource, AmplitudeSourceConfig
from okr_pipeline.connectors.api_source import Period, ShapeError, period_days
from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from tests.connectors.analytics_c import server
from tests.connectors.analytics_c.contract import VendorContract

SECRETS = {"amp_key": server.AMPLITUDE_API_KEY, "amp_secret": server.AMPLITUDE_SECRET_KEY}


def amp(**fields: Any) -> AmplitudeSourceConfig:
    raw = {
        "type": "amplitude",
        "connection": "local",
        "event_type": "Sign Up",
        "api_key_secret": "amp_key",
        "secret_key_secret": "amp_secret",
        "retries": 1,
        **fields,
    }
    return AmplitudeSourceConfig.model_validate(raw)


def source(env: SourceEnvironment) -> AmplitudeSource:
    return AmplitudeSource(env, sleep=lambda seconds: None)


class TestAmplitudeContract(VendorContract):
    source_class = AmplitudeSource
    expected_value = Decimal(9)
    secrets = SECRETS
    trigger_field = "event_type"
    triggers: ClassVar[Mapping[str, str]] = {
        "timeout": "slow",
        "rate_limited": "busy",
        "server_error": "down",
        "bad_shape": "odd",
    }

    def valid_config(self) -> Mapping[str, Any]:
        return amp().model_dump(exclude_defaults=True) | {"type": "amplitude"}

    def wrong_credentials(self) -> SourceEnvironment:
        return self.environment_with(amp_secret="amp-wrong-77e1c0d9-SECRET")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # Uniques over the 7 days: 2 + 7 users (not the sum of the daily 4s).
        ({}, Decimal(9)),
        ({"metric": "totals"}, Decimal(70)),  # 10 events a day
        ({"metric": "totals", "period": "cycle"}, Decimal(310)),  # 1 April to 1 May
        ({"period": "28d"}, Decimal(30)),
        ({"event_type": "Never Fired"}, None),  # no series: no data
        (
            {
                "event_type": "Upgrade",
                "filters": [
                    {
                        "subprop_type": "event",
                        "subprop_key": "plan",
                        "subprop_op": "is",
                        "subprop_value": ["pro"],
                    }
                ],
                "metric": "totals",
                "period": "1d",
            },
            Decimal(10),
        ),
    ],
    ids=["uniques-7d", "totals-7d", "totals-cycle", "uniques-28d", "never-fired", "filtered"],
)
def test_fetch(
    env: SourceEnvironment,
    ctx: SourceContext,
    cassette: Any,
    fields: dict[str, Any],
    expected: Decimal | None,
) -> None:
    with source(env) as amp_source:
        assert amp_source.fetch(amp(**fields), ctx) == expected


def test_request_shape(env: SourceEnvironment, ctx: SourceContext) -> None:
    config = amp(filters=[{"subprop_type": "user", "subprop_key": "country"}], period="7d")
    with source(env) as amp_source:
        call = amp_source.build_call(config, ctx, "https://amplitude.com", SECRETS)
    assert (call.method, call.url) == ("GET", "https://amplitude.com/api/2/events/segmentation")
    assert dict(call.params) == {
        "e": '{"event_type":"Sign Up","filters":[{"subprop_key":"country","subprop_type":"user"}]}',
        "m": "uniques",
        "start": "20240425",
        "end": "20240501",
        "i": "1",
    }
    pair = base64.b64decode(call.headers["Authorization"].removeprefix("Basic ")).decode()
    assert pair == f"{server.AMPLITUDE_API_KEY}:{server.AMPLITUDE_SECRET_KEY}"
    assert json.loads(call.params["e"])["event_type"] == "Sign Up"


def _ctx(as_of: datetime) -> SourceContext:
    return SourceContext(
        as_of=as_of,
        cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
        cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
        kr_ref="growth/kr",
    )


@pytest.mark.parametrize(
    ("as_of", "period", "first", "last"),
    [
        (datetime(2024, 5, 1, 12, tzinfo=UTC), "1d", "2024-05-01", "2024-05-01"),
        (datetime(2024, 5, 1, 12, tzinfo=UTC), "7d", "2024-04-25", "2024-05-01"),
        (datetime(2024, 5, 1, tzinfo=UTC), "7d", "2024-04-24", "2024-04-30"),
        (datetime(2024, 5, 1, tzinfo=UTC), "1d", "2024-04-30", "2024-04-30"),
        (datetime(2024, 5, 1, 12, tzinfo=UTC), "90d", "2024-02-02", "2024-05-01"),
        (datetime(2024, 5, 1, 12, tzinfo=UTC), "cycle", "2024-04-01", "2024-05-01"),
        (datetime(2024, 5, 1, tzinfo=UTC), "cycle", "2024-04-01", "2024-04-30"),
        # An as-of at the very start of the cycle asks for its first day, never an empty
        # or reversed range.
        (datetime(2024, 4, 1, tzinfo=UTC), "cycle", "2024-04-01", "2024-04-01"),
    ],
)
def test_period_days(as_of: datetime, period: Period, first: str, last: str) -> None:
    start, end = period_days(period, _ctx(as_of))
    assert (start.isoformat(), end.isoformat()) == (first, last)


def test_bad_shape_says_what_was_found(
    env: SourceEnvironment, ctx: SourceContext, cassette: Any
) -> None:
    with source(env) as amp_source, pytest.raises(FatalSourceError) as caught:
        amp_source.fetch(amp(event_type="odd"), ctx)
    assert "KR growth/kr: amplitude source GET" in str(caught.value)
    assert "has no 'seriesCollapsed' (keys: series, xValues)" in str(caught.value)


@pytest.mark.parametrize(
    ("collapsed", "expected"),
    [
        ([[{"setId": "iOS", "value": 3}], [{"setId": "Android", "value": 1}]], "2 series"),
        ([[]], None),
        ([[{"setId": "", "count": 3}]], "has no 'value' (keys: count, setId)"),
        ({"value": 3}, "not a list"),
    ],
    ids=["group-by", "empty-series", "no-value", "not-a-list"],
)
def test_read_value_shapes(
    env: SourceEnvironment, ctx: SourceContext, collapsed: Any, expected: str | None
) -> None:
    answer = {"data": {"series": [[4]], "seriesCollapsed": collapsed}}
    with source(env) as amp_source:
        if expected is None:
            assert amp_source.read_value(amp(), ctx, answer) is None
        else:
            with pytest.raises(ShapeError, match=re.escape(expected)):
                amp_source.read_value(amp(), ctx, answer)


def test_wrong_keys_are_fatal_without_the_keys(env: SourceEnvironment, ctx: SourceContext) -> None:
    wrong = SourceEnvironment(
        connections=env.connections,
        secrets={"amp_key": SecretStr("amp-nokey-3c9e1a7f-SECRET"), **_only(env, "amp_secret")},
    )
    with source(wrong) as amp_source, pytest.raises(FatalSourceError) as caught:
        amp_source.fetch(amp(), ctx)
    message = str(caught.value)
    assert "HTTP 401" in message
    basic = base64.b64encode(f"amp-nokey-3c9e1a7f-SECRET:{server.AMPLITUDE_SECRET_KEY}".encode())
    for secret in ("amp-nokey-3c9e1a7f-SECRET", server.AMPLITUDE_SECRET_KEY, basic.decode()):
        assert secret not in message


def _only(env: SourceEnvironment, name: str) -> dict[str, SecretStr]:
    return {name: env.secrets[name]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"metric": "histogram"}, "metric"),
        ({"event_type": ""}, "event_type"),
        ({"period": "14d"}, "period"),
        ({"secret_key_secret": "has space"}, "is not a secret name"),
    ],
)
def test_config_validation_messages(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        amp(**fields)
    assert expected in str(caught.value)
