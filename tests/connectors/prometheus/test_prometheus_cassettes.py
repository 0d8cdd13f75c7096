"""Cassettes recorded from the real Prometheus, replayed in CI without any server.

Only queries whose answers do not depend on the server's own samples are recorded (see
``conftest.py``), so re-recording from a fresh server gives the same cassettes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from okr_pipeline.connectors.base import SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.prometheus import PrometheusSource, PrometheusSourceConfig
from tests.connectors.conftest import PLACEHOLDER_BASE
from tests.connectors.prometheus import proxy
from tests.connectors.prometheus.conftest import AS_OF, CASSETTES, context

T = Decimal(int(AS_OF.timestamp()))
SERIES = 'vector(1) or label_replace(vector(2), "x", "y", "", "")'


def fetch(env: SourceEnvironment, **source: Any) -> Decimal | None:
    cfg = PrometheusSourceConfig.model_validate(
        {"type": "prometheus", "connection": "prom", "retries": 0, **source}
    )
    with PrometheusSource(env) as prom:
        return prom.fetch(cfg, context())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"query": "vector(42)"}, Decimal(42)),
        ({"query": "time()"}, T),
        ({"query": 'up{job="nope"}'}, None),
        ({"query": "0 / 0"}, None),
        ({"query": "time()", "mode": "range", "period": "1d", "reduce": "avg"}, T - 43200),
        (
            {"query": "time()", "mode": "range", "period": "7d", "step": "1d", "reduce": "min"},
            T - 7 * 86400,
        ),
        (
            {
                "query": "vector(7)",
                "connection": "bearer",
                "auth": {"type": "bearer", "secret": "prom_token"},
            },
            Decimal(7),
        ),
    ],
    ids=["vector", "time", "empty", "nan", "range-avg", "range-min", "bearer-proxy"],
)
def test_replayed_values(
    cassette_env: SourceEnvironment, source: dict[str, Any], expected: Decimal | None
) -> None:
    assert fetch(cassette_env, **source) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sum(", "parse error: unclosed left parenthesis"),
        (SERIES, "returned 2 series, expected one"),
        ("vector(1) / 0", "+Inf"),
    ],
    ids=["parse-error", "several-series", "infinity"],
)
def test_replayed_errors(cassette_env: SourceEnvironment, query: str, message: str) -> None:
    with pytest.raises(FatalSourceError) as info:
        fetch(cassette_env, query=query)
    assert message in str(info.value)


def test_cassettes_were_recorded_and_hold_no_secret() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) >= 10, "record: OKR_VCR_RECORD_MODE=once pytest tests/connectors/prometheus"
    for path in files:
        text = path.read_text()
        for secret in proxy.ALL_SECRET_VALUES:
            assert secret not in text, f"a secret is recorded in {path.name}"
        assert "Bearer" not in text and "Basic " not in text, path.name
        assert "127.0.0.1" not in text and f"uri: {PLACEHOLDER_BASE}/" in text, path.name
