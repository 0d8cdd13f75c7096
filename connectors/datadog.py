"""Datadog: a metrics query over the KR's period, reduced to one number.

Calls the metrics query API (``GET /api/v1/query`` with ``from``, ``to`` in Unix seconds
and ``query``), signed in with the ``DD-API-KEY`` and ``DD-APPLICATION-KEY`` headers. The
answer's ``series`` holds one entry per group of the query, each with a ``pointlist`` of
``[milliseconds, value]`` pairs; the one series' points are reduced to the KR's number
(``last``, ``avg``, ``max``, ``min`` or ``sum``). A query that yields several series is an
error (aggregate them in the query, e.g. ``sum:...{*}`` without ``by``); none is no data.
Documented at https://docs.datadoghq.com/api/latest/metrics/query-timeseries-points/.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field

from okr_pipeline.connectors.api_source import (
    ApiCall,
    ApiSource,
    ApiSourceConfig,
    Period,
    Reduce,
    ShapeError,
    dig,
    number,
    period_bounds,
    reduce_points,
)
from okr_pipeline.connectors.auth import SecretName
from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.okr_core.names import SECRET_NAME_RULE

__all__ = ["DatadogSource", "DatadogSourceConfig"]


class DatadogSourceConfig(ApiSourceConfig):
    """A Datadog metrics query whose one series is reduced to the KR's number."""

    type: Literal["datadog"] = Field(description="Datadog metrics query (/api/v1/query).")
    query: str = Field(
        min_length=1,
        description="Metrics query, e.g. 'sum:trace.http.request.hits{service:web}.as_count()'; "
        "it must give one series (no 'by {...}' that splits it).",
    )
    period: Period = Field(
        "1d",
        description="Window queried, ending at the as-of: cycle, 1d, 7d, 28d, 30d or 90d.",
    )
    reduce: Reduce = Field(
        "last",
        description="How the series' points become one number: last (the latest point), "
        "avg, max, min or sum.",
    )
    api_key_secret: SecretName = Field(
        min_length=1,
        description=f"Secret holding the API key (DD-API-KEY): {SECRET_NAME_RULE}.",
    )
    application_key_secret: SecretName = Field(
        min_length=1,
        description=f"Secret holding the application key (DD-APPLICATION-KEY): {SECRET_NAME_RULE}.",
    )

    def secret_names(self) -> set[str]:
        """The API key and the application key.

        Returns:
            Both secret names.
        """
        return {self.api_key_secret, self.application_key_secret}


class DatadogSource(ApiSource[DatadogSourceConfig]):
    """Reads a Datadog metrics query over the KR's period (``/api/v1/query``)."""

    type_name = "datadog"
    config_model = DatadogSourceConfig
    default_base_url: ClassVar[str] = "https://api.datadoghq.com"
    reads = "a metrics query over the period, reduced (last, avg, max, min, sum)"
    authentication = "API key and application key headers (secrets)"
    tested_against = "documented shapes (local server)"

    def build_call(
        self,
        config: DatadogSourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """``GET /api/v1/query`` for the period ending at the as-of, in Unix seconds."""
        start, end = period_bounds(config.period, ctx)
        return ApiCall(
            method="GET",
            url=f"{base_url}/api/v1/query",
            params={
                "from": str(int(start.timestamp())),
                "to": str(int(end.timestamp())),
                "query": config.query,
            },
            headers={
                "DD-API-KEY": secrets[config.api_key_secret],
                "DD-APPLICATION-KEY": secrets[config.application_key_secret],
                "Accept": "application/json",
            },
        )

    def read_value(self, config: DatadogSourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """The one series' points reduced as configured; no series or no points is no data.

        Raises:
            ShapeError: Not the documented shape, an error status, or several series.
        """
        if isinstance(answer, dict) and answer.get("status") == "error":
            raise ShapeError(f"Datadog answered with an error: {answer.get('error')!r}")
        series = dig(answer, "series")
        if not isinstance(series, list):
            raise ShapeError("the answer's 'series' is not a list")
        if len(series) > 1:
            scopes = ", ".join(str(s.get("scope")) for s in series[:5] if isinstance(s, dict))
            raise ShapeError(
                f"{len(series)} series in the answer ({scopes}), expected one; aggregate "
                f"them in the query (no 'by {{...}}')"
            )
        one = number(series, "series")
        if one is None:
            return None
        points = dig(one, "pointlist")
        if not isinstance(points, list):
            raise ShapeError("series[0].pointlist is not a list")
        return reduce_points(config.reduce, _values(points))


def _values(points: list[Any]) -> list[Decimal]:
    """The points' values in time order; null values (gaps) are left out."""
    pairs: list[tuple[Decimal, Decimal]] = []
    for index, point in enumerate(points):
        if not (isinstance(point, list) and len(point) == 2):
            raise ShapeError(f"series[0].pointlist[{index}] is not a [timestamp, value] pair")
        stamp, value = point
        if value is None:
            continue
        if not isinstance(stamp, Decimal) or not isinstance(value, Decimal):
            raise ShapeError(f"series[0].pointlist[{index}] is not a pair of numbers")
        pairs.append((stamp, value))
    return [value for _, value in sorted(pairs, key=lambda pair: pair[0])]
