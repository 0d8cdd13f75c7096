"""HTTP source against recorded responses of the local test API (cassettes)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.connectors.http import HttpSource, HttpSourceConfig
from tests.connectors import http_server

pytestmark = pytest.mark.usefixtures("cassette")


def config(**fields: Any) -> HttpSourceConfig:
    fields.setdefault("connection", "api")
    fields.setdefault("value_path", "$.total")
    return HttpSourceConfig.model_validate({"type": "http", **fields})


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def source(http_env: SourceEnvironment, sleeps: list[float]) -> Any:
    # A seeded jitter: the waits are random within the policy's bounds, yet reproducible.
    with HttpSource(http_env, sleep=sleeps.append, random=random.Random(7).random) as src:
        yield src


def assert_jittered(sleeps: list[float], ceilings: list[float]) -> None:
    """Each wait lies between half its ceiling and the ceiling (the policy's equal jitter)."""
    assert len(sleeps) == len(ceilings), sleeps
    for wait, ceiling in zip(sleeps, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling, (sleeps, ceilings)


@pytest.mark.parametrize(
    ("path", "value_path", "expected"),
    [
        ("/number", "$.total", Decimal("42")),
        ("/decimal", "$.total", Decimal("12.345678901234567890123")),
        ("/string", "$.total", Decimal("42.5")),
        ("/negative-exp", "$.total", Decimal("-1.5e3")),
        ("/prometheus", "$.data.result[0].value[1]", Decimal("42.5")),
        ("/bool", "$.done", Decimal(1)),
        ("/prometheus-empty", "$.data.result[0].value[1]", None),
        ("/prometheus-nan", "$.data.result[0].value[1]", None),
        ("/null", "$.total", None),
        ("/nan-literal", "$.total", None),
        ("/empty-list", "$[0]", None),
        ("/nps", "$.data.nps.score", Decimal(41)),
    ],
)
def test_values(source: HttpSource, ctx: SourceContext, path: str, value_path: str, expected: Any):
    value = source.fetch(config(path=path, value_path=value_path), ctx)
    assert value == expected
    assert value is None or isinstance(value, Decimal)
    if expected is not None:
        assert str(value) == str(expected)  # exact, not merely equal


def test_decimal_is_exact_not_float(source: HttpSource, ctx: SourceContext):
    value = source.fetch(config(path="/decimal"), ctx)
    assert value == Decimal("12.345678901234567890123")  # a float would lose digits


@pytest.mark.parametrize(
    ("path", "value_path", "fragment"),
    [
        ("/text", "$.total", "value at $.total is 'abc', not a number"),
        ("/object", "$.total", "value at $.total is an object, not a number"),
        ("/infinity", "$.total", "not a finite number"),
        ("/many", "$.items[*].v", "matched 3 values; expected 1"),
        ("/number", "$.missing", "value_path $.missing matched nothing: $ has keys: total"),
        (
            "/nps",
            "$.data.nps.scor",
            "value_path $.data.nps.scor matched nothing: $.data.nps has keys: score, responses",
        ),
        ("/not-json", "$.total", "the response is not JSON"),
        ("/empty-body", "$.total", "the response is not JSON"),
        ("/redirect", "$.total", "HTTP 302"),
        ("/status/404", "$.total", "HTTP 404"),
        ("/status/400", "$.total", "HTTP 400"),
        ("/status/401", "$.total", "HTTP 401"),
        ("/status/403", "$.total", "HTTP 403"),
        ("/status/422", "$.total", "HTTP 422"),
    ],
)
def test_fatal_errors(
    source: HttpSource,
    ctx: SourceContext,
    sleeps: list[float],
    path: str,
    value_path: str,
    fragment: str,
):
    with pytest.raises(FatalSourceError) as info:
        source.fetch(config(path=path, value_path=value_path), ctx)
    message = str(info.value)
    assert fragment in message
    assert "KR growth/signups" in message
    assert sleeps == []  # fatal errors are not retried
    assert len(message) < 700  # bodies are truncated


def test_error_body_is_truncated(source: HttpSource, ctx: SourceContext):
    with pytest.raises(FatalSourceError) as info:
        source.fetch(config(path="/status/404"), ctx)
    assert info.value.status == 404
    assert "status 404 for you" in str(info.value)
    assert "x" * 300 not in str(info.value)
    assert "more chars" in str(info.value)


@pytest.mark.parametrize(
    ("query", "expected_sleeps"),
    [
        # Backoff ceilings (0.01 doubling), or the server's Retry-After taken as given.
        ("fail=1&code=500", [0.01]),
        ("fail=2&code=503", [0.01, 0.02]),
        ("fail=1&code=429&retry_after=2", [2.0]),
        ("fail=1&code=502&retry_after=0", [0.0]),
    ],
)
def test_transient_errors_are_retried(
    source: HttpSource,
    ctx: SourceContext,
    sleeps: list[float],
    query: str,
    expected_sleeps: list[float],
):
    name = query.replace("&", "-").replace("=", "")
    cfg = config(path=f"/flaky/{name}?{query}", backoff_seconds=0.01)
    assert source.fetch(cfg, ctx) == Decimal(len(expected_sleeps) + 1)
    if "retry_after" in query:
        assert sleeps == expected_sleeps
    else:
        assert_jittered(sleeps, expected_sleeps)


def test_retries_exhausted(source: HttpSource, ctx: SourceContext, sleeps: list[float]):
    cfg = config(path="/status/503", retries=2, backoff_seconds=0.01)
    with pytest.raises(RetriableSourceError, match=r"HTTP 503.*after 3 attempts") as info:
        source.fetch(cfg, ctx)
    assert info.value.status == 503
    assert_jittered(sleeps, [0.01, 0.02])


def test_retry_after_beyond_cap_gives_up(
    source: HttpSource, ctx: SourceContext, sleeps: list[float]
):
    cfg = config(path="/flaky/long-wait?fail=1&code=429&retry_after=3600")
    with pytest.raises(RetriableSourceError, match="retry after 3600s"):
        source.fetch(cfg, ctx)
    assert sleeps == []


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/bearer", {"type": "bearer", "secret": "api_token"}),
        (
            "/basic",
            {
                "type": "basic",
                "username": http_server.BASIC_USER,
                "password_secret": "api_password",
            },
        ),
        ("/apikey-header", {"type": "api_key", "secret": "api_key"}),
        ("/apikey-header", {"type": "api_key", "secret": "api_key", "header": "X-API-Key"}),
        ("/apikey-query", {"type": "api_key", "secret": "api_key", "query": "key"}),
    ],
)
def test_auth_schemes(source: HttpSource, ctx: SourceContext, path: str, auth: dict[str, str]):
    assert source.fetch(config(path=path, auth=auth), ctx) == Decimal(99)


def test_wrong_credentials_are_fatal(http_env: SourceEnvironment, ctx: SourceContext):
    env = SourceEnvironment(http_env.connections, {"api_token": http_env.secrets["api_key"]})
    with HttpSource(env) as source, pytest.raises(FatalSourceError, match="HTTP 401") as info:
        source.fetch(config(path="/bearer", auth={"type": "bearer", "secret": "api_token"}), ctx)
    assert http_server.SECRETS["api_key"] not in str(info.value)


def test_echoed_secret_is_redacted(source: HttpSource, ctx: SourceContext):
    with pytest.raises(FatalSourceError, match="HTTP 403") as info:
        auth = {"type": "bearer", "secret": "api_token"}
        source.fetch(config(path="/leaky-error", auth=auth), ctx)
    assert http_server.SECRETS["api_token"] not in str(info.value)
    # Live: redacted by the source; replayed: already scrubbed in the cassette.
    assert "token ***" in str(info.value) or "token <SCRUBBED>" in str(info.value)


ECHO_PARAMS = {
    "from": "${cycle_start}",
    "day": "${as_of:date}",
    "token": "${secret:api_token}",
    "limit": 5,
    "exact": True,
}


@pytest.mark.parametrize(
    ("value_path", "shown"),
    [
        # The echo endpoint returns what it received; a non-numeric value is quoted in the
        # error message, which is how these tests see what was sent.
        ("$.query.from", "'2024-04-01T00:00:00Z'"),
        ("$.query.day", "'2024-05-01'"),
        ("$.query.exact", "'true'"),
        ("$.x_tenant", None),  # connection header: a secret, must not be shown
        ("$.query.token", None),  # placeholder secret: must not be shown
        ("$.authorization", None),
    ],
)
def test_placeholders_and_headers_are_sent(
    source: HttpSource, ctx: SourceContext, value_path: str, shown: str | None
):
    cfg = config(
        path="/echo",
        params=ECHO_PARAMS,
        headers={"Authorization": "Bearer ${secret:api_token}"},
        value_path=value_path,
    )
    with pytest.raises(FatalSourceError, match="not a number") as info:
        source.fetch(cfg, ctx)
    message = str(info.value)
    if shown is not None:
        assert f"value at {value_path} is {shown}, not a number" in message
    for secret in http_server.ALL_SECRET_VALUES:
        assert secret not in message
    assert "***" in message or "<SCRUBBED>" in message or shown is not None


def test_numeric_param_is_sent(source: HttpSource, ctx: SourceContext):
    cfg = config(path="/echo", params=ECHO_PARAMS, value_path="$.query.limit")
    assert source.fetch(cfg, ctx) == Decimal(5)


def test_post_json_body(source: HttpSource, ctx: SourceContext):
    cfg = config(
        path="/query",
        method="POST",
        json={"metric_value": "17.25", "at": "${as_of}"},
        value_path="$.result.value",
    )
    assert source.fetch(cfg, ctx) == Decimal("17.25")


def test_absolute_url(source: HttpSource, ctx: SourceContext, http_base_url: str):
    cfg = HttpSourceConfig(type="http", url=f"{http_base_url}/number", value_path="$.total")
    assert source.fetch(cfg, ctx) == Decimal(42)
