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

Instead of an event, a saved Insights report can be read (``bookmark_id``: ``GET
/api/query/insights``, https://docs.mixpanel.com/reference/insights-query). Its date range
is the one saved in the report, so it answers for "now" only (``okr backfill`` skips it).
Its ``series`` maps the one metric to ``{"all": n}`` (a report showing one number) or to
``{date: n}``, of which the newest date's value is the number, as the report's line ends.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, model_validator

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
    event: str | None = Field(
        None, min_length=1, description="The event's name, e.g. 'Signed up' (or bookmark_id)."
    )
    bookmark_id: int | None = Field(
        None,
        gt=0,
        description="A saved Insights report to read instead of an event (its own date "
        "range applies; not backfilled).",
    )
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

    @model_validator(mode="after")
    def _event_or_report(self) -> MixpanelSourceConfig:
        if (self.event is None) == (self.bookmark_id is None):
            raise ValueError("set either 'event' (segmentation) or 'bookmark_id' (a saved report)")
        if self.bookmark_id is not None:
            ignored = sorted({"count", "where", "period"} & self.model_fields_set)
            if ignored:
                raise ValueError(
                    f"{', '.join(ignored)} apply to an event, not to a saved report "
                    f"(bookmark_id): the report's own settings apply"
                )
        return self

    def uses_as_of(self) -> bool:
        """An event is counted over the window; a saved report has its own date range.

        Returns:
            False for a saved report (``bookmark_id``).
        """
        return self.bookmark_id is None

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
    """The query string of ``/api/query/segmentation`` for the KR's window (or of insights).

    Args:
        config: The validated config.
        ctx: The as-of and the cycle.

    Returns:
        The parameters.
    """
    if config.bookmark_id is not None:
        return {"project_id": str(config.project_id), "bookmark_id": str(config.bookmark_id)}
    assert config.event is not None  # the model's validator: an event or a bookmark
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
        """``GET /api/query/segmentation`` (or ``insights``) signed in as the service account."""
        pair = f"{config.service_account}:{secrets[config.service_account_secret]}".encode()
        endpoint = "segmentation" if config.bookmark_id is None else "insights"
        return ApiCall(
            method="GET",
            url=f"{base_url}/api/query/{endpoint}",
            params=segmentation_params(config, ctx),
            headers={"Authorization": "Basic " + base64.b64encode(pair).decode()},
        )

    def read_value(self, config: MixpanelSourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """The series summed (general) or its one bucket (unique, average); see the module."""
        if config.bookmark_id is not None:
            return _report_value(answer)
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


def _report_value(answer: Any) -> Any:
    """A saved report's number: its one metric's ``all``, or its newest date's value."""
    series = dig(answer, "series")
    if not isinstance(series, dict):
        raise ShapeError(f"series is {type(series).__name__}, not an object")
    points = number(list(series.values()), "metrics")
    if points is None or points == {}:
        return None
    if not isinstance(points, dict):
        raise ShapeError("the metric's series is not an object of date: value")
    if "all" in points:
        return points["all"]
    newest = max(points)
    if isinstance(points[newest], dict):
        raise ShapeError("the report has a breakdown (one series per segment); save it without one")
    # ISO dates of one offset sort as text; the last point is the report's current value.
    return points[newest]
