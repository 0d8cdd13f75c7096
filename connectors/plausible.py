"""Plausible Analytics: one aggregate metric of a site over the KR's window (Stats API v2).

One ``POST /api/v2/query`` with the API key as a bearer token; the body names the site, the
one metric and the window as a custom date-time range, ``[start, as-of]``, so a backfilled
as-of sees exactly what had happened by then. Without ``dimensions`` the answer holds one
row, ``results[0].metrics[0]``; an empty ``results`` list is no data.
Documented at https://plausible.io/docs/stats-api (request and answer shapes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from okr_pipeline.connectors.api_source import (
    ApiCall,
    ApiSource,
    ApiSourceConfig,
    Period,
    ShapeError,
    dig,
    number,
    period_bounds,
)
from okr_pipeline.connectors.auth import SecretName
from okr_pipeline.connectors.base import SourceContext

__all__ = ["PlausibleMetric", "PlausibleSource", "PlausibleSourceConfig", "plausible_body"]

#: The metrics the Stats API v2 documents.
PlausibleMetric = Literal[
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
    "scroll_depth",
    "percentage",
    "conversion_rate",
    "group_conversion_rate",
    "average_revenue",
    "total_revenue",
    "time_on_page",
]


class PlausibleSourceConfig(ApiSourceConfig):
    """One metric of one Plausible site over a window ending at the as-of."""

    type: Literal["plausible"] = Field(description="Source type: Plausible Stats API v2.")
    site_id: str = Field(
        min_length=1, description="The site's domain as registered in Plausible, e.g. shop.example."
    )
    metric: PlausibleMetric = Field(
        description="The metric, e.g. visitors, pageviews, events or conversion_rate."
    )
    period: Period = Field(
        "cycle",
        description="Window ending at the as-of: cycle (the cycle so far), 1d, 7d, 28d, 30d "
        "or 90d.",
    )
    filters: list[Any] | None = Field(
        None,
        description='Stats API filters, sent as given, e.g. [["is", "event:goal", ["Signup"]]].',
    )
    api_key_secret: SecretName = Field(
        min_length=1, description="Secret holding the Plausible API key (OKR_SECRETS__<NAME>)."
    )

    def secret_names(self) -> set[str]:
        """The API key's secret.

        Returns:
            ``{api_key_secret}``.
        """
        return {self.api_key_secret}


def plausible_body(config: PlausibleSourceConfig, ctx: SourceContext) -> dict[str, Any]:
    """The ``/api/v2/query`` body: site, metric and the window as a date-time range.

    Args:
        config: The validated config.
        ctx: The as-of and the cycle.

    Returns:
        The JSON body.
    """
    start, end = period_bounds(config.period, ctx)
    body: dict[str, Any] = {
        "site_id": config.site_id,
        "metrics": [config.metric],
        "date_range": [_iso(start), _iso(end)],
    }
    if config.filters is not None:
        body["filters"] = config.filters
    return body


def _iso(moment: datetime) -> str:
    # Seconds are the precision the documented date-time form shows.
    return moment.replace(microsecond=0).isoformat()


class PlausibleSource(ApiSource[PlausibleSourceConfig]):
    """Reads one aggregate metric from Plausible (cloud, or self-hosted by a connection)."""

    type_name = "plausible"
    config_model = PlausibleSourceConfig
    default_base_url = "https://plausible.io"
    reads = "Stats API v2: one metric of a site over a window ending at the as-of"
    authentication = "API key as a bearer token (secret)"
    tested_against = "documented shapes (local server)"

    def build_call(
        self,
        config: PlausibleSourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """``POST /api/v2/query`` with the bearer key (see :func:`plausible_body`)."""
        return ApiCall(
            method="POST",
            url=f"{base_url}/api/v2/query",
            headers={"Authorization": f"Bearer {secrets[config.api_key_secret]}"},
            json_body=plausible_body(config, ctx),
        )

    def read_value(self, config: PlausibleSourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """``results[0].metrics[0]``; no row is no data, several rows an error."""
        results = dig(answer, "results")
        if not isinstance(results, list):
            raise ShapeError(f"results is {type(results).__name__}, not a list")
        if number(results, "result rows") is None:
            return None
        metrics = dig(answer, "results", 0, "metrics")
        if not isinstance(metrics, list):
            raise ShapeError(f"results[0].metrics is {type(metrics).__name__}, not a list")
        return number(metrics, "metrics")
