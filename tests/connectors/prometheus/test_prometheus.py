"""The ``prometheus`` source against a real Prometheus that scrapes itself.

Exact values come from queries whose answers are fixed: ``vector(42)``, ``time()`` at a
fixed as-of (it evaluates to the as-of itself, which proves the ``time`` parameter is
sent), ``count(up)`` of a server scraping only itself. Its own series are read at a
moment the server is known to have samples (``live_ctx``).
API reference: https://prometheus.io/docs/prometheus/latest/querying/api/
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from okr_pipeline.connectors.api_source import ShapeError
from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.connectors.prometheus import (
    PrometheusSource,
    PrometheusSourceConfig,
    step_seconds,
)
from tests.connectors.prometheus import proxy
from tests.connectors.prometheus.conftest import AS_OF, context
from tests.connectors.prometheus.server import Prometheus

T = Decimal(int(AS_OF.timestamp()))  # the fixed as-of in unix seconds


def config(query: str, **more: Any) -> PrometheusSourceConfig:
    return PrometheusSourceConfig.model_validate(
        {"type": "prometheus", "connection": "prom", "query": query, "retries": 0, **more}
    )


def fetch(env: SourceEnvironment, cfg: PrometheusSourceConfig, ctx: SourceContext) -> Any:
    with PrometheusSource(env, sleep=lambda seconds: None) as source:
        return source.fetch(cfg, ctx)


# -- the request ---------------------------------------------------------------------------


def test_instant_query_is_asked_at_the_as_of() -> None:
    call = PrometheusSource(SourceEnvironment()).build_call(
        config("up"), context(), "http://p:9090", {}
    )
    assert (call.method, call.url) == ("GET", "http://p:9090/api/v1/query")
    assert call.params == {"query": "up", "time": "2024-05-01T12:00:00Z"}


@pytest.mark.parametrize(
    ("period", "step", "start", "sent_step"),
    [
        ("1d", None, "2024-04-30T12:00:00Z", "3600"),
        ("7d", "1d", "2024-04-24T12:00:00Z", "86400"),
        # 24h is not a whole number of 7h steps: the window starts 3 steps back, so the
        # last point is still the as-of.
        ("1d", "7h", "2024-04-30T15:00:00Z", "25200"),
        ("cycle", "90s", "2024-04-01T12:00:00Z", "90"),
        ("1d", "1h30m", "2024-04-30T12:00:00Z", "5400"),
        ("1d", "0.5", "2024-04-30T12:00:00Z", "0.5"),
    ],
)
def test_range_query_ends_at_the_as_of(
    period: str, step: str | None, start: str, sent_step: str
) -> None:
    cfg = config("up", mode="range", period=period, **({"step": step} if step else {}))
    call = PrometheusSource(SourceEnvironment()).build_call(cfg, context(), "http://p", {})
    assert call.url == "http://p/api/v1/query_range"
    assert call.params == {
        "query": "up",
        "start": start,
        "end": "2024-05-01T12:00:00Z",
        "step": sent_step,
    }


@pytest.mark.parametrize(
    ("step", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("250ms", "0.25"),
        ("15", 15),
    ],
)
def test_step_durations(step: str, seconds: int | str) -> None:
    assert step_seconds(step) == Decimal(seconds)


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"query": "up"}, "connection\n  Field required"),
        ({"connection": "prom"}, "query\n  Field required"),
        ({"connection": "prom", "query": ""}, "at least 1 character"),
        (
            {"connection": "prom", "query": "up", "period": "7d"},
            "period apply to mode: range only",
        ),
        (
            {"connection": "prom", "query": "up", "step": "5m", "reduce": "avg"},
            "step, reduce apply to mode: range only",
        ),
        ({"connection": "prom", "query": "up", "mode": "range"}, "mode: range needs a period"),
        (
            {"connection": "prom", "query": "up", "mode": "range", "period": "1d", "step": "5x"},
            "step '5x' is not a positive duration",
        ),
        (
            {"connection": "prom", "query": "up", "mode": "range", "period": "1d", "step": "0s"},
            "is not a positive duration",
        ),
        (
            {"connection": "prom", "query": "up", "mode": "range", "period": "2d"},
            "'cycle', '1d', '7d', '28d', '30d' or '90d'",
        ),
        (
            {"connection": "prom", "query": "up", "auth": {"type": "api_key", "secret": "k"}},
            "'bearer', 'basic'",
        ),
        ({"connection": "prom", "query": "up", "promql": "up"}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors_are_clear(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        PrometheusSourceConfig.model_validate({"type": "prometheus", **raw})
    assert message in str(info.value)


def test_secret_names_come_from_auth() -> None:
    assert config("up").secret_names() == set()
    bearer = config("up", auth={"type": "bearer", "secret": "tok"})
    basic = config("up", auth={"type": "basic", "username": "u", "password_secret": "pw"})
    assert (bearer.secret_names(), basic.secret_names()) == ({"tok"}, {"pw"})


# -- values from the real server -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("vector(42)", Decimal(42)),
        ("42.125", Decimal("42.125")),  # a scalar
        ("time()", T),  # evaluated at the as-of sent
        ("vector(time()) - 86400", T - 86400),
        ("scalar(vector(-7.5))", Decimal("-7.5")),
        ('up{job="nope"}', None),  # an empty vector: no data
        ('up{job="prometheus"}', None),  # the server did not exist in 2024: no data
        ("0 / 0", None),  # NaN: no data
    ],
)
def test_fixed_values(prom_env: SourceEnvironment, query: str, expected: Decimal | None) -> None:
    assert fetch(prom_env, config(query), context()) == expected


def test_fractional_as_of_is_sent_exactly(prom_env: SourceEnvironment) -> None:
    ctx = context(AS_OF.replace(microsecond=250_000))
    assert fetch(prom_env, config("time()"), ctx) == T + Decimal("0.25")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('scalar(up{job="prometheus"})', Decimal(1)),
        ('up{job="prometheus"}', Decimal(1)),  # a single-sample vector
        ("count(up)", Decimal(1)),  # the server scrapes only itself
        ("count(prometheus_build_info)", Decimal(1)),
        ('sum(up{job="nope"})', None),
    ],
)
def test_the_servers_own_series(
    prom_env: SourceEnvironment, live_ctx: SourceContext, query: str, expected: Decimal | None
) -> None:
    assert fetch(prom_env, config(query), live_ctx) == expected


def test_several_series_name_the_first_label_sets(
    prometheus: Prometheus, prom_env: SourceEnvironment, live_ctx: SourceContext
) -> None:
    at = Decimal(str(live_ctx.as_of.timestamp()))
    count = prometheus.query("count(go_gc_duration_seconds)", at)["data"]["result"][0]
    with pytest.raises(FatalSourceError) as info:
        fetch(prom_env, config("go_gc_duration_seconds"), live_ctx)
    message = str(info.value)
    assert f"the query returned {count['value'][1]} series, expected one; narrow" in message
    assert 'go_gc_duration_seconds{instance="127.0.0.1:' in message
    assert 'quantile="0"' in message and message.endswith(", ...")
    assert "sum(...)" in message and "KR ops/uptime" in message


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sum(", "HTTP 400 Bad Request"),
        ("sum(", '"errorType":"bad_data"'),
        ("sum(", "parse error: unclosed left parenthesis"),
        ("rate(up)", "expected type range vector in call to function"),
        ("vector(1) / 0", "the query's value is +Inf (a division by zero?)"),
        ("-1 / 0", "the query's value is -Inf"),
        ('"hello"', "the query's result is a 'string', not a number"),
        ("vector(1)[5m:1m]", "wrap it in a function such as avg_over_time(...)"),
        (
            'vector(1) or label_replace(vector(2), "x", "y", "", "")',
            "returned 2 series, expected one; narrow it to one series, e.g. sum(...) or a label "
            'matcher. First: {}, {x="y"}',
        ),
    ],
)
def test_fatal_answers(prom_env: SourceEnvironment, query: str, message: str) -> None:
    with pytest.raises(FatalSourceError) as info:
        fetch(prom_env, config(query), context())
    assert message in str(info.value)
    assert "KR ops/uptime: prometheus source GET http://127.0.0.1:" in str(info.value)


# -- range mode ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reduce", "expected"),
    [
        (None, T),  # last: the as-of itself
        ("last", T),
        ("max", T),
        ("min", T - 86400),
        ("avg", T - 43200),
        ("sum", 25 * (T - 43200)),  # 25 hourly points, the as-of included
    ],
)
def test_range_reduces_the_points(
    prom_env: SourceEnvironment, reduce: str | None, expected: Decimal
) -> None:
    more = {"reduce": reduce} if reduce else {}
    cfg = config("time()", mode="range", period="1d", step="1h", **more)
    assert fetch(prom_env, cfg, context()) == expected


def test_range_steps_back_from_the_as_of(prom_env: SourceEnvironment) -> None:
    cfg = config("time()", mode="range", period="1d", step="7h", reduce="min")
    assert fetch(prom_env, cfg, context()) == T - 3 * 7 * 3600


def test_range_over_the_servers_own_series(
    prom_env: SourceEnvironment, live_ctx: SourceContext
) -> None:
    for reduce in ("avg", "max", "min", "last"):
        cfg = config('up{job="prometheus"}', mode="range", period="1d", step="10s", reduce=reduce)
        assert fetch(prom_env, cfg, live_ctx) == 1


def test_range_without_points_is_no_data(prom_env: SourceEnvironment) -> None:
    cfg = config('up{job="prometheus"}', mode="range", period="7d", step="1h", reduce="avg")
    assert fetch(prom_env, cfg, context()) is None


def test_range_of_several_series_is_an_error(prom_env: SourceEnvironment) -> None:
    query = 'vector(1) or label_replace(vector(2), "x", "y", "", "")'
    cfg = config(query, mode="range", period="1d", reduce="sum")
    with pytest.raises(FatalSourceError, match="returned 2 series, expected one"):
        fetch(prom_env, cfg, context())


def test_too_many_points_is_prometheus_own_message(prom_env: SourceEnvironment) -> None:
    cfg = config("vector(1)", mode="range", period="1d", step="1s")
    with pytest.raises(FatalSourceError, match=r"exceeded maximum resolution of 11,000 points"):
        fetch(prom_env, cfg, context())


# -- behind a proxy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        {"connection": "bearer", "auth": {"type": "bearer", "secret": "prom_token"}},
        {
            "connection": "basic",
            "auth": {"type": "basic", "username": proxy.USER, "password_secret": "prom_password"},
        },
    ],
)
def test_auth_through_a_proxy(prom_env: SourceEnvironment, source: dict[str, Any]) -> None:
    assert fetch(prom_env, config("vector(7)", **source), context()) == 7


@pytest.mark.parametrize("connection", ["bearer", "basic"])
def test_refused_credentials_are_fatal(prom_env: SourceEnvironment, connection: str) -> None:
    cfg = config(
        "vector(7)", connection=connection, auth={"type": "bearer", "secret": "wrong_token"}
    )
    with pytest.raises(FatalSourceError, match="HTTP 401") as info:
        fetch(prom_env, cfg, context())
    assert info.value.status == 401
    assert "wrongtok" not in str(info.value)


@pytest.mark.parametrize(("connection", "status"), [("limited", 429), ("broken", 503)])
def test_transient_answers_are_retried(
    prom_env: SourceEnvironment, connection: str, status: int
) -> None:
    waits: list[float] = []
    cfg = config("vector(1)", connection=connection, retries=2, backoff_seconds=0.5)
    with (
        PrometheusSource(prom_env, sleep=waits.append, random=lambda: 0.0) as source,
        pytest.raises(RetriableSourceError, match=f"HTTP {status}.*after 3 attempts"),
    ):
        source.fetch(cfg, context())
    assert len(waits) == 2


def test_not_prometheus_answer_names_what_it_found(prom_env: SourceEnvironment) -> None:
    with pytest.raises(FatalSourceError, match=r"has no 'status' \(keys: hello, items\)"):
        fetch(prom_env, config("vector(1)", connection="other"), context())


def test_unknown_connection_is_named(prom_env: SourceEnvironment) -> None:
    with pytest.raises(FatalSourceError, match="connection 'promethus'"):
        fetch(prom_env, config("vector(1)", connection="promethus"), context())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        # Prometheus sends errors with a 4xx/5xx status; a proxy may pass one on as 200.
        (
            {"status": "error", "errorType": "timeout", "error": "query timed out"},
            "Prometheus answered an error (timeout): query timed out",
        ),
        ({"status": "pending"}, "the answer's status is 'pending'"),
        ({"status": "success", "data": {"result": []}}, "has no 'resultType' (keys: result)"),
        (
            {"status": "success", "data": {"resultType": "vector", "result": {}}},
            "data.result is not a list of series",
        ),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1, 2, 3]}},
            'a sample is not [timestamp, "value"]',
        ),
        (
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "histogram": []}]},
            },
            "has no 'value' (keys: histogram, metric)",
        ),
    ],
)
def test_shapes_not_documented_are_named(answer: dict[str, Any], message: str) -> None:
    source = PrometheusSource(SourceEnvironment())
    with pytest.raises(ShapeError) as info:
        source.read_value(config("up"), context(), answer)
    assert message in str(info.value)
