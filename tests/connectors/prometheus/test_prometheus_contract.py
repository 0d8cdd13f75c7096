"""The contract suite on the ``prometheus`` source: the real server, behind the test proxy.

The valid config reads ``vector(41.5)`` through the proxy with a bearer token; the failure
scenarios are the proxy's routes (``proxy.py``): slow, 429, 503, a refused token, and an
answer that is not Prometheus' shape. The proxy echoes the sent token in its error bodies,
so the suite's secret checks prove it is redacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from okr_pipeline.connectors.base import BaseSource, SourceEnvironment
from okr_pipeline.connectors.prometheus import PrometheusSource
from okr_pipeline.connectors.testing import ConnectorContract
from tests.connectors.prometheus.conftest import environment


class TestPrometheusContract(ConnectorContract):
    source_class = PrometheusSource
    expected_value = Decimal("41.5")

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        return PrometheusSource(env, sleep=lambda seconds: None)

    def environment(self) -> SourceEnvironment:
        return environment(self.fixture("prometheus").url, self.fixture("prom_proxy"))

    def valid_config(self) -> Mapping[str, Any]:
        return {
            "type": "prometheus",
            "connection": "bearer",
            "query": "vector(41.5)",
            "auth": {"type": "bearer", "secret": "prom_token"},
        }

    def failing_config(self, scenario: str) -> Mapping[str, Any] | None:
        wrong = {"auth": {"type": "bearer", "secret": "wrong_token"}}
        changes: dict[str, dict[str, Any]] = {
            "timeout": {"connection": "slow", "timeout_seconds": 0.3},
            "rate_limited": {"connection": "limited", **wrong},
            "server_error": {"connection": "broken", **wrong},
            "unauthorized": wrong,
            "bad_shape": {"connection": "other"},
        }
        return {**self.valid_config(), "retries": 1, **changes[scenario]}
