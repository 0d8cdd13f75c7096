"""Amplitude: an event's uniques or totals over the KR's period (Dashboard REST API).

Calls event segmentation (``GET /api/2/events/segmentation``) with the event as JSON
(``e``), the metric (``m``: uniques, totals, pct_dau or average), daily interval and the
period's first and last day (``start``, ``end``: ``YYYYMMDD``, both included), signed in
with HTTP Basic (API key as the user, secret key as the password). The number is the
collapsed value over the whole range, ``data.seriesCollapsed[0][0].value``: for uniques
that is the distinct users of the range, not the sum of the daily uniques. A segment or a
group-by that gives several series is an error; no series is no data.
Documented at https://amplitude.com/docs/apis/analytics/dashboard-rest.

Amplitude's days are those of the project's time zone; the range is computed in UTC.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from okr_pipeline.connectors.api_source import (
    ApiCall,
    ApiSource,
    ApiSourceConfig,
    Period,
    ShapeError,
    dig,
    number,
    period_days,
)
from okr_pipeline.connectors.auth import SecretName
from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.okr_core.names import SECRET_NAME_RULE

__all__ = ["AmplitudeSource", "AmplitudeSourceConfig"]


class AmplitudeSourceConfig(ApiSourceConfig):
    """One event's uniques or totals over the KR's period, from event segmentation."""

    type: Literal["amplitude"] = Field(
        description="Amplitude event segmentation (Dashboard REST API)."
    )
    event_type: str = Field(
        min_length=1,
        description="The event, as named in Amplitude (e.g. 'Sign Up'; '_active' for any "
        "active event, '_all' for any event).",
    )
    filters: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Amplitude event filters, as documented for the 'e' parameter (e.g. "
        "[{subprop_type: event, subprop_key: plan, subprop_op: is, subprop_value: [pro]}]).",
    )
    metric: Literal["uniques", "totals", "pct_dau", "average"] = Field(
        "uniques",
        description="What is counted (the 'm' parameter): uniques (distinct users over the "
        "period), totals (events), pct_dau or average (events per user).",
    )
    period: Period = Field(
        "7d",
        description="Days counted, ending at the as-of: cycle, 1d, 7d, 28d, 30d or 90d.",
    )
    api_key_secret: SecretName = Field(
        min_length=1,
        description=f"Secret holding the project's API key (Basic user): {SECRET_NAME_RULE}.",
    )
    secret_key_secret: SecretName = Field(
        min_length=1,
        description="Secret holding the project's secret key (Basic password): "
        f"{SECRET_NAME_RULE}.",
    )

    def secret_names(self) -> set[str]:
        """The API key and the secret key.

        Returns:
            Both secret names.
        """
        return {self.api_key_secret, self.secret_key_secret}


class AmplitudeSource(ApiSource[AmplitudeSourceConfig]):
    """Reads an Amplitude event's uniques or totals over the KR's period."""

    type_name = "amplitude"
    config_model = AmplitudeSourceConfig
    default_base_url: ClassVar[str] = "https://amplitude.com"
    reads = "an event's uniques or totals over the period (event segmentation)"
    authentication = "HTTP Basic: API key and secret key (secrets)"
    tested_against = "documented shapes (local server)"

    def build_call(
        self,
        config: AmplitudeSourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """``GET /api/2/events/segmentation`` for the period's days, daily interval."""
        first, last = period_days(config.period, ctx)
        event: dict[str, Any] = {"event_type": config.event_type}
        if config.filters:
            event["filters"] = config.filters
        pair = f"{secrets[config.api_key_secret]}:{secrets[config.secret_key_secret]}"
        return ApiCall(
            method="GET",
            url=f"{base_url}/api/2/events/segmentation",
            params={
                "e": json.dumps(event, separators=(",", ":"), sort_keys=True),
                "m": config.metric,
                "start": first.strftime("%Y%m%d"),
                "end": last.strftime("%Y%m%d"),
                "i": "1",
            },
            headers={
                "Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii"),
                "Accept": "application/json",
            },
        )

    def read_value(self, config: AmplitudeSourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """``data.seriesCollapsed[0][0].value``; no series is no data.

        Raises:
            ShapeError: Not the documented shape, or several series (segments, group-by).
        """
        collapsed = dig(answer, "data", "seriesCollapsed")
        if not isinstance(collapsed, list):
            raise ShapeError("data.seriesCollapsed is not a list")
        series = number(collapsed, "series (segments or groups)")
        if series is None:
            return None
        if not isinstance(series, list):
            raise ShapeError("data.seriesCollapsed[0] is not a list")
        point = number(series, "values in data.seriesCollapsed[0]")
        return None if point is None else dig(point, "value")
