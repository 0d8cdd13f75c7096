"""HTTP source against the live local test API, where real time and threads matter."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.connectors.http import HttpSource, HttpSourceConfig
from tests.connectors import http_server


def config(**fields: Any) -> HttpSourceConfig:
    if "url" not in fields:
        fields.setdefault("connection", "api")
    fields.setdefault("value_path", "$.total")
    return HttpSourceConfig.model_validate({"type": "http", **fields})


@pytest.fixture
def source(http_env: SourceEnvironment, http_base_url: str) -> Any:
    with HttpSource(http_env) as src:
        yield src


def test_timeout_is_retriable_and_bounded(source: HttpSource, ctx: SourceContext):
    cfg = config(path="/slow?seconds=2", timeout_seconds=0.3, retries=1, backoff_seconds=0.01)
    started = time.monotonic()
    expected = r"no complete answer within 0.3s after 2 attempts"
    with pytest.raises(RetriableSourceError, match=expected):
        source.fetch(cfg, ctx)
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_retriable(source: HttpSource, ctx: SourceContext):
    cfg = config(url="http://127.0.0.1:1/metric", retries=1, backoff_seconds=0.01)
    with pytest.raises(RetriableSourceError, match="cannot connect"):
        source.fetch(cfg, ctx)


def test_url_credentials_never_shown(source: HttpSource, ctx: SourceContext):
    cfg = config(url="http://reader:pw-9d1e22-SECRET@127.0.0.1:1/m?token=qq-77", retries=0)
    with pytest.raises(RetriableSourceError) as info:
        source.fetch(cfg, ctx)
    assert "pw-9d1e22-SECRET" not in str(info.value)
    assert "qq-77" not in str(info.value)
    assert "pw-9d1e22-SECRET" not in repr(cfg) and "qq-77" not in str(cfg)


def test_echoed_secret_redacted_by_the_source(source: HttpSource, ctx: SourceContext):
    with pytest.raises(FatalSourceError) as info:
        source.fetch(config(path="/leaky-error"), ctx)
    assert "token *** not allowed" in str(info.value)
    assert http_server.SECRETS["api_token"] not in str(info.value)


def test_backoff_really_waits(source: HttpSource, ctx: SourceContext):
    cfg = config(path="/flaky/live-backoff?fail=2&code=503", backoff_seconds=0.05)
    started = time.monotonic()
    assert source.fetch(cfg, ctx) == Decimal(3)
    # Ceilings 0.05 and 0.1; the jitter keeps at least half of each.
    assert time.monotonic() - started >= (0.05 + 0.1) / 2


def test_backoff_is_jittered_by_the_injected_random(
    http_env: SourceEnvironment, ctx: SourceContext
):
    cfg = config(path="/status/503", retries=2, backoff_seconds=0.01)
    # Equal jitter: a draw of 0 waits half the ceilings (0.01, 0.02), a draw of 0.5 three
    # quarters of them.
    for draw, expected in [(0.0, [0.005, 0.01]), (0.5, [0.0075, 0.015])]:
        sleeps: list[float] = []
        with (
            HttpSource(http_env, sleep=sleeps.append, random=lambda d=draw: d) as src,
            pytest.raises(RetriableSourceError, match=r"HTTP 503.*after 3 attempts"),
        ):
            src.fetch(cfg, ctx)
        assert sleeps == pytest.approx(expected)


def test_retry_after_really_honoured(source: HttpSource, ctx: SourceContext):
    cfg = config(path="/flaky/live-429?fail=1&code=429&retry_after=1", backoff_seconds=0.01)
    started = time.monotonic()
    assert source.fetch(cfg, ctx) == Decimal(2)
    assert time.monotonic() - started >= 1.0


def test_concurrent_fetches_share_one_instance(source: HttpSource, ctx: SourceContext):
    cfg = config(path="/bearer", auth={"type": "bearer", "secret": "api_token"})
    with ThreadPoolExecutor(max_workers=8) as pool:
        values = list(pool.map(lambda _: source.fetch(cfg, ctx), range(40)))
    assert values == [Decimal(99)] * 40
    assert "sessions=" in repr(source)
    source.close()
    source.close()  # idempotent
