"""The ``google_analytics`` connector against a local server answering like Google.

Shapes from the GA4 Data API reference
(https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport)
and Google's service-account sign-in
(https://developers.google.com/identity/protocols/oauth2/service-account#httprest); the
server (``server.py``) checks the JWT's signature with the throwaway key's public key and
its claims, as Google does, and runReport's bearer token and body.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from okr_pipeline.connectors.base import BaseSource, SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.connectors.google_analytics import (
    GoogleAnalyticsSource,
    GoogleAnalyticsSourceConfig,
)
from tests.connectors.analytics_c import server
from tests.connectors.analytics_c.conftest import NOW, fixed_clock, make_key
from tests.connectors.analytics_c.contract import VendorContract


def ga(**fields: Any) -> GoogleAnalyticsSourceConfig:
    raw = {
        "type": "google_analytics",
        "connection": "local",
        "property_id": server.GA_PROPERTY,
        "metric": "sessions",
        "credentials_secret": "ga_key",
        "retries": 1,
        **fields,
    }
    return GoogleAnalyticsSourceConfig.model_validate(raw)


def source(env: SourceEnvironment, clock: Any = fixed_clock) -> GoogleAnalyticsSource:
    return GoogleAnalyticsSource(env, sleep=lambda seconds: None, clock=clock)


class TestGoogleAnalyticsContract(VendorContract):
    source_class = GoogleAnalyticsSource
    expected_value = Decimal(460)
    trigger_field = "property_id"
    triggers: ClassVar[Mapping[str, str]] = {
        "timeout": "408",
        "rate_limited": "429",
        "server_error": "503",
        "bad_shape": "422",
    }

    def secret_values(self) -> Mapping[str, str]:
        return {"ga_key": self.fixture("ga_key")}  # generated per session

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        return source(env)

    def valid_config(self) -> Mapping[str, Any]:
        return ga().model_dump(exclude_defaults=True) | {"type": "google_analytics"}

    def wrong_credentials(self) -> SourceEnvironment:
        # The same account, another private key: the signature does not verify.
        text, _ = make_key(f"{self.fixture('vendor_url')}/token")
        return self.environment_with(ga_key=text)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # 28 days ending on the as-of's day (4 April to 1 May): 4 + ... + 30, then 1.
        ({}, Decimal(460)),
        (
            {
                "dimension_filter": {
                    "filter": {"fieldName": "country", "stringFilter": {"value": "France"}}
                }
            },
            Decimal(153),
        ),
        ({"metric": "activeUsers", "period": "cycle"}, Decimal(7 * 31)),  # 1 April to 1 May
        ({"metric": "sessions", "period": "7d"}, Decimal(25 + 26 + 27 + 28 + 29 + 30 + 1)),
        ({"metric": "keyEvents"}, None),  # GA4 answers without rows: no data
        (
            {
                "dimension_filter": {
                    "filter": {"fieldName": "country", "stringFilter": {"value": "Peru"}}
                }
            },
            None,
        ),
    ],
    ids=["sessions-28d", "france", "cycle", "7d", "no-rows", "filtered-out"],
)
def test_fetch(
    env: SourceEnvironment,
    ctx: SourceContext,
    cassette: Any,
    fields: dict[str, Any],
    expected: Decimal | None,
) -> None:
    with source(env) as ga_source:
        assert ga_source.fetch(ga(**fields), ctx) == expected


def test_as_of_at_midnight_ends_with_the_day_before(env: SourceEnvironment, cassette: Any) -> None:
    midnight = SourceContext(
        as_of=datetime(2024, 5, 1, tzinfo=UTC),
        cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
        cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
        kr_ref="growth/kr",
    )
    with source(env) as ga_source:
        assert ga_source.fetch(ga(period="1d"), midnight) == Decimal(30)  # 30 April only
        assert ga_source.fetch(ga(period="cycle"), midnight) == Decimal(465)  # 1..30 April


def test_request_shape(env: SourceEnvironment, ctx: SourceContext, vendor_url: str) -> None:
    with source(env) as ga_source:
        call = ga_source.build_call(
            ga(period="7d", metric="activeUsers"), ctx, vendor_url, {"ga_key": _key(env)}
        )
    assert call.method == "POST"
    assert call.url == f"{vendor_url}/v1beta/properties/{server.GA_PROPERTY}:runReport"
    assert call.json_body == {
        "dateRanges": [{"startDate": "2024-04-25", "endDate": "2024-05-01"}],
        "metrics": [{"name": "activeUsers"}],
    }
    assert call.headers["Authorization"].startswith("Bearer ya29.")


def _key(env: SourceEnvironment) -> str:
    return env.secrets["ga_key"].get_secret_value()


def test_token_is_cached_until_shortly_before_it_expires(
    env: SourceEnvironment, ctx: SourceContext, vendor_server: Any
) -> None:
    now = [NOW]
    before = vendor_server.hits["token"]
    with source(env, clock=lambda: now[0]) as ga_source:
        for _ in range(3):
            assert ga_source.fetch(ga(), ctx) == Decimal(460)
        assert vendor_server.hits["token"] == before + 1
        now[0] = NOW + 3599 - 299  # within five minutes of the end: renewed
        vendor_server.clock = lambda: now[0]
        try:
            assert ga_source.fetch(ga(), ctx) == Decimal(460)
        finally:
            vendor_server.clock = fixed_clock
        assert vendor_server.hits["token"] == before + 2


def test_threads_share_one_sign_in(
    env: SourceEnvironment, ctx: SourceContext, vendor_server: Any
) -> None:
    before = vendor_server.hits["token"]
    results: list[Decimal | None] = []
    with source(env) as ga_source:
        threads = [
            threading.Thread(target=lambda: results.append(ga_source.fetch(ga(), ctx)))
            for _ in range(12)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [Decimal(460)] * 12
    assert vendor_server.hits["token"] == before + 1


def test_refused_sign_in_shows_no_key_jwt_or_token(
    env: SourceEnvironment,
    ctx: SourceContext,
    vendor_url: str,
    vendor_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    text, _ = make_key(f"{vendor_url}/token")  # not the key the server knows
    wrong = SourceEnvironment(connections=env.connections, secrets={"ga_key": SecretStr(text)})
    with source(wrong) as ga_source, pytest.raises(FatalSourceError) as caught:
        ga_source.fetch(ga(), ctx)
    message = str(caught.value)
    assert "KR growth/kr" in message and "HTTP 400" in message
    assert "Invalid JWT Signature" in message and "(sign-in)" in message
    jwt = vendor_server.assertions[-1]
    shown = message + caplog.text
    for secret in (jwt, *jwt.split("."), text, *_pem_body(text)):
        assert secret not in shown


def _pem_body(key_text: str) -> list[str]:
    pem = json.loads(key_text)["private_key"]
    return [line for line in pem.splitlines() if "-----" not in line and line]


def test_refused_token_is_fatal_then_forgotten(
    env: SourceEnvironment, ctx: SourceContext, vendor_server: Any
) -> None:
    # The server forgets its tokens (as if revoked): the cached one is refused.
    with source(env) as ga_source:
        assert ga_source.fetch(ga(), ctx) == Decimal(460)
        with vendor_server.lock:
            tokens = list(vendor_server.tokens)
            vendor_server.tokens.clear()
        with pytest.raises(FatalSourceError) as caught:
            ga_source.fetch(ga(), ctx)
        # The refused token is forgotten: the next fetch signs in again.
        assert ga_source.fetch(ga(), ctx) == Decimal(460)
    message = str(caught.value)
    assert "HTTP 401" in message and "UNAUTHENTICATED" in message
    assert not any(token in message for token in tokens)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"property_id": "422"}, "has no 'metricValues'"),
        ({"metric": "bounceRateX"}, "HTTP 400"),
        ({"property_id": "999"}, "HTTP 403"),
    ],
    ids=["bad-shape", "unknown-metric", "no-access"],
)
def test_errors_are_fatal_and_name_the_kr(
    env: SourceEnvironment,
    ctx: SourceContext,
    cassette: Any,
    fields: dict[str, Any],
    expected: str,
) -> None:
    with source(env) as ga_source, pytest.raises(FatalSourceError) as caught:
        ga_source.fetch(ga(**fields), ctx)
    assert "KR growth/kr: google_analytics source" in str(caught.value)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("not json at all -----BEGIN", "the secret is not JSON"),
        ('{"type": "authorized_user"}', "not 'service_account'"),
        ('{"type": "service_account", "client_email": "a@b"}', "no private_key, token_uri"),
        (
            '{"client_email": "a@b", "token_uri": "http://x.test/t", "private_key": "zz-SECRET"}',
            "not a readable PEM private key",
        ),
    ],
    ids=["not-json", "wrong-type", "missing-fields", "bad-pem"],
)
def test_unusable_key_is_fatal_and_not_quoted(
    env: SourceEnvironment, ctx: SourceContext, key: str, expected: str
) -> None:
    bad = SourceEnvironment(connections=env.connections, secrets={"ga_key": SecretStr(key)})
    with source(bad) as ga_source, pytest.raises(FatalSourceError) as caught:
        ga_source.fetch(ga(), ctx)
    assert expected in str(caught.value)
    assert key not in str(caught.value) and "zz-SECRET" not in str(caught.value)


def test_sign_in_failures_are_classified(env: SourceEnvironment, ctx: SourceContext) -> None:
    key = json.loads(_key(env))
    key["token_uri"] = f"{key['token_uri'].rsplit('/', 1)[0]}/token-is-elsewhere"
    moved = SourceEnvironment(
        connections=env.connections, secrets={"ga_key": SecretStr(json.dumps(key))}
    )
    with source(moved) as ga_source, pytest.raises(FatalSourceError, match="HTTP 404"):
        ga_source.fetch(ga(), ctx)
    key["token_uri"] = "http://127.0.0.1:9/token"  # discard port: nothing listens
    down = SourceEnvironment(
        connections=env.connections, secrets={"ga_key": SecretStr(json.dumps(key))}
    )
    with source(down) as ga_source, pytest.raises(RetriableSourceError, match="sign-in"):
        ga_source.fetch(ga(retries=0), ctx)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"property_id": "G-ABC123"}, "property_id"),
        ({"metric": "active users"}, "metric"),
        ({"period": "2w"}, "period"),
        ({"credentials_secret": "1bad"}, "is not a secret name"),
    ],
)
def test_config_validation_messages(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ga(**fields)
    assert expected in str(caught.value)
