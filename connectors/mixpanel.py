"""Mixpanel: an event's count (or unique users) over the KR's window (Query API, segmentation).

One ``GET /api/query/segmentation`` with a service account (HTTP Basic: its username and its
secret) and ``project_id``, ``event``, ``from_date``, ``to_date`` (days, both included, in
the project's time zone), ``type`` and an optional ``where`` expression (a parameter, never
formatted into anything). The answer holds one series per segment,
``data.values[<event>][<day>]``; the KR's number is:

* ``type: general`` (events): the sum of the series over the window;
* ``type: unique`` / ``average``: per-unit uniques do not add up to the uniques of the
  window, so the call asks for one bucket as long as the window (the documented ``interval``
  in days, in lieu of ``unit``) and the number is that bucket's value.

The window's days are the calendar days it touches: from the start's day to the day of the
last instant before the as-of, so an as-of at midnight ends with the previous day.
No series (or an empty one) is no data; several series are an error.
Documented at https://docs.mixpanel.com/reference/segmentation-query.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
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
from okr_pipeline.connectors.values import NotANumberError, to_decimal

__all__ = ["MixpanelSource", "MixpanelSourceConfig", "segmentation_params", "window_days"]


class MixpanelSourceConfig(ApiSourceConfig):
    """One event's count or unique users in a Mixpanel project over a window."""

    type: Literal["mixpanel"] = Field(description="Source type: Mixpanel Query API.")
    project_id: int = Field(gt=0, description="The Mixpanel project's id.")
    event: str = Field(min_length=1, description="The event's name, e.g. 'Signed up'.")
    count: Literal["general", "unique", "average"] = Field(
        "general",
        description="general: events (the series summed); unique: unique users over the "
        "window; average: events per user over the window.",
    )
    where: str | None = Field(
        None,
        min_length=1,
        description='Mixpanel filter expression, e.g. properties["plan"] == "pro".',
    )
    period: Period = Field(
        "cycle",
        description="Window ending at the as-of: cycle, 1d, 7d, 28d, 30d or 90d (whole days "
        "in the project's time zone).",
    )
    service_account: str = Field(min_length=1, description="The service account's username.")
    service_account_secret: SecretName = Field(
        min_length=1,
        description="Secret holding the service account's secret (OKR_SECRETS__<NAME>).",
    )

    def secret_names(self) -> set[str]:
        """The service account secret's name.

        Returns:
            ``{service_account_secret}``.
        """
        return {self.service_account_secret}


def window_days(period: Period, ctx: SourceContext) -> tuple[date, date]:
    """The calendar days (UTC) the window touches: ``from_date`` and ``to_date``, included.

    Args:
        period: The KR's window.
        ctx: The as-of and the cycle.

    Returns:
        ``(first, last)``; at least one day (an empty window is its start's day).
    """
    start, end = period_bounds(period, ctx)
    first = start.date()
    # The last instant before the as-of: an as-of at midnight does not take in its own day.
    last = (end - timedelta(microseconds=1)).date()
    return first, max(first, last)


def segmentation_params(config: MixpanelSourceConfig, ctx: SourceContext) -> dict[str, str]:
    """The query string of ``/api/query/segmentation`` for the KR's window.

    Args:
        config: The validated config.
        ctx: The as-of and the cycle.

    Returns:
        The parameters.
    """
    first, last = window_days(config.period, ctx)
    params = {
        "project_id": str(config.project_id),
        "event": config.event,
        "from_date": first.isoformat(),
        "to_date": last.isoformat(),
        "type": config.count,
    }
    if config.count == "general":
        params["unit"] = "day"
    else:
        params["interval"] = str((last - first).days + 1)
    if config.where is not None:
        params["where"] = config.where
    return params


class MixpanelSource(ApiSource[MixpanelSourceConfig]):
    """Reads an event's count or uniques from Mixpanel (US; EU or India by a connection)."""

    type_name = "mixpanel"
    config_model = MixpanelSourceConfig
    default_base_url = "https://mixpanel.com"
    reads = "Query API segmentation: an event's count or uniques over a window of days"
    authentication = "service account: username + secret (HTTP Basic)"
    tested_against = "documented shapes (local server)"

    def build_call(
        self,
        config: MixpanelSourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """``GET /api/query/segmentation`` signed in as the service account."""
        pair = f"{config.service_account}:{secrets[config.service_account_secret]}".encode()
        return ApiCall(
            method="GET",
            url=f"{base_url}/api/query/segmentation",
            params=segmentation_params(config, ctx),
            headers={"Authorization": "Basic " + base64.b64encode(pair).decode()},
        )

    def read_value(self, config: MixpanelSourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """The series summed (general) or its one bucket (unique, average)."""
        values = dig(answer, "data", "values")
        if not isinstance(values, dict):
            raise ShapeError(f"data.values is {type(values).__name__}, not an object")
        series = number(list(values.values()), "series")
        if series is None:
            return None
        if not isinstance(series, dict):
            raise ShapeError(f"data.values.{config.event} is not an object of day: value")
        if not series:
            return None
        if config.count != "general":
            return number(list(series.values()), "buckets")
        return sum((_count(day, value) for day, value in series.items()), Decimal(0))


def _count(day: str, value: Any) -> Decimal:
    try:
        count = to_decimal(value)
    except NotANumberError as exc:
        raise ShapeError(f"the value of {day} is not a number: {exc}") from exc
    if count is None:
        raise ShapeError(f"the value of {day} is null, not a count")
    return count
