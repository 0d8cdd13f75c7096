"""The ``prometheus`` source: one PromQL query evaluated at the KR's as-of.

Instant mode (the default) asks ``GET <url>/api/v1/query`` with ``time`` set to the as-of,
so a backfill reads the past as Prometheus kept it. The answer must be a scalar or a vector
of one sample; an empty vector is ``no_data`` (the series did not exist at that moment),
several series are an error naming them (aggregate in PromQL: ``sum(...)``), ``NaN`` is
``no_data`` and an infinity is an error.

Range mode asks ``GET <url>/api/v1/query_range`` over a period ending at the as-of, every
``step``, and reduces the one series' points with ``last``, ``avg``, ``max``, ``min`` or
``sum``. Smoothing over time inside PromQL (``avg_over_time(x[7d])``, ``increase(...)``) is
the user's query, evaluated in instant mode; range mode is for reducing a query that has no
``*_over_time`` form, e.g. the peak of ``sum(rate(...[5m]))`` over a week.

Prometheus has no public address: the KR names a connection (the server's base URL, or a
proxy's). A proxy in front of it may ask for a bearer token or basic auth (secrets).
API reference: https://prometheus.io/docs/prometheus/latest/querying/api/
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from okr_pipeline.connectors.api_source import (
    ApiCall,
    ApiSource,
    ApiSourceConfig,
    Period,
    Reduce,
    ShapeError,
    dig,
    period_bounds,
    reduce_points,
)
from okr_pipeline.connectors.auth import BasicAuth, BearerAuth, apply_auth
from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.connectors.values import NotANumberError, to_decimal

__all__ = ["PrometheusSource", "PrometheusSourceConfig", "step_seconds"]

DEFAULT_STEP = "1h"
# Prometheus' duration grammar (units in this order, each at most once), e.g. 1h30m.
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_UNIT_SECONDS: tuple[Decimal, ...] = tuple(
    Decimal(n) for n in (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, "0.001")
)
_SERIES_SHOWN = 3
_RANGE_ONLY = ("period", "step", "reduce")


def step_seconds(step: str) -> Decimal:
    """The length of a Prometheus duration (``30s``, ``5m``, ``1h30m``) or of plain seconds.

    Args:
        step: The duration as written in the config.

    Returns:
        Seconds, exactly.

    Raises:
        ValueError: Not a duration, or not longer than zero.
    """
    text = step.strip()
    match = _DURATION.fullmatch(text)
    if text and match is not None:
        seconds = sum(
            (int(n) * unit for n, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if n),
            Decimal(0),
        )
    else:
        try:
            seconds = Decimal(text)
        except ArithmeticError:
            seconds = Decimal(-1)
        if not seconds.is_finite():
            seconds = Decimal(-1)
    if seconds <= 0:
        raise ValueError(
            f"step {step!r} is not a positive duration: write e.g. '30s', '5m', '1h', "
            "'1h30m', '1d' or a number of seconds"
        )
    return seconds


class PrometheusSourceConfig(ApiSourceConfig):
    """A PromQL query whose value at the as-of is the KR's number."""

    type: Literal["prometheus"] = Field(description="Prometheus HTTP API (PromQL).")
    connection: str = Field(  # required here: Prometheus has no public address
        min_length=1,
        description="Connection in the settings whose url is the Prometheus server's base "
        "URL (e.g. http://prometheus:9090, or a proxy's URL with its path prefix).",
    )
    query: str = Field(
        min_length=1,
        description="PromQL expression; its value at the as-of is the KR's number (a "
        "scalar or a single series: aggregate with sum(...) and the like).",
    )
    mode: Literal["instant", "range"] = Field(
        "instant",
        description="instant: the query at the as-of (/api/v1/query). range: the query "
        "every step over period (/api/v1/query_range), reduced to one number.",
    )
    period: Period | None = Field(
        None,
        description="range mode: the window ending at the as-of: cycle, 1d, 7d, 28d, 30d "
        "or 90d (required in range mode).",
    )
    step: str | None = Field(
        None,
        min_length=1,
        description=f"range mode: time between points, a Prometheus duration such as 5m or "
        f"1h, or seconds (default {DEFAULT_STEP}).",
    )
    reduce: Reduce | None = Field(
        None,
        description="range mode: how the points become one number: last (default), avg, "
        "max, min or sum.",
    )
    auth: Annotated[BearerAuth | BasicAuth, Field(discriminator="type")] | None = Field(
        None,
        description="Credentials for a proxy in front of Prometheus: bearer (token secret) "
        "or basic (username and password secret).",
    )

    @model_validator(mode="after")
    def _mode_fields(self) -> PrometheusSourceConfig:
        if self.mode == "instant":
            given = [name for name in _RANGE_ONLY if getattr(self, name) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} apply to mode: range only; add 'mode: range' or "
                    "remove them (for a smoothed value in instant mode, write it in PromQL, "
                    "e.g. avg_over_time(x[7d]))"
                )
            return self
        if self.period is None:
            raise ValueError(
                "mode: range needs a period (cycle, 1d, 7d, 28d, 30d or 90d): the window "
                "ending at the as-of"
            )
        if self.step is not None:
            step_seconds(self.step)
        return self

    def secret_names(self) -> set[str]:
        """The secret of the auth scheme, if any.

        Returns:
            The secret names.
        """
        return self.auth.secret_names() if self.auth is not None else set()


class PrometheusSource(ApiSource[PrometheusSourceConfig]):
    """Reads a number from a Prometheus server's HTTP API (see the module docstring)."""

    type_name = "prometheus"
    config_model = PrometheusSourceConfig
    reads = "a PromQL query at the as-of (instant), or reduced over a range"
    authentication = "none, or bearer / basic (secrets) for a proxy in front"
    tested_against = "real server (Debian's prometheus, scraping itself)"
    # Never used: the config requires a connection (Prometheus has no public address).
    default_base_url: ClassVar[str] = ""

    def build_call(
        self,
        config: PrometheusSourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """``/api/v1/query`` at the as-of, or ``/api/v1/query_range`` ending at it.

        Args:
            config: The validated config.
            ctx: The as-of and the cycle.
            base_url: The connection's URL, without a trailing slash.
            secrets: The auth secret's value, if any.

        Returns:
            The GET call.
        """
        headers: dict[str, str] = {}
        params: dict[str, str] = {"query": config.query}
        apply_auth(config.auth, dict(secrets), headers, params)
        end = ctx.as_of.astimezone(UTC)
        if config.mode == "instant":
            params["time"] = _rfc3339(end)
            return ApiCall("GET", f"{base_url}/api/v1/query", params=params, headers=headers)
        assert config.period is not None  # the validator requires it in range mode
        step = step_seconds(config.step or DEFAULT_STEP)
        start, _ = period_bounds(config.period, ctx)
        # Whole steps back from the as-of, so that the last point is the as-of itself
        # (Prometheus evaluates at start, start + step, ... up to end).
        steps = int(Decimal((end - start).total_seconds()) // step)
        start = end - timedelta(seconds=float(steps * step))
        params |= {"start": _rfc3339(start), "end": _rfc3339(end), "step": f"{step.normalize():f}"}
        return ApiCall("GET", f"{base_url}/api/v1/query_range", params=params, headers=headers)

    def read_value(self, config: PrometheusSourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """The scalar, or the one series' sample (range: its points reduced).

        Returns:
            The number, or None for no series (or NaN).

        Raises:
            ShapeError: An error answer, several series, an infinity, or not the API's shape.
        """
        status = dig(answer, "status")
        if status == "error":
            kind = answer.get("errorType", "?")
            raise ShapeError(f"Prometheus answered an error ({kind}): {answer.get('error', '')}")
        if status != "success":
            raise ShapeError(f"the answer's status is {status!r}, not 'success' or 'error'")
        kind = dig(answer, "data", "resultType")
        result = dig(answer, "data", "result")
        if config.mode == "range":
            if kind != "matrix":
                raise ShapeError(f"a range query answered a {kind!r}, not a 'matrix'")
            series = _one_series(result)
            if series is None:
                return None
            points = dig(series, "values")
            if not isinstance(points, list):
                raise ShapeError("the series' values are not a list")
            # NaN points (None here) are left out; none left is no data.
            values = [v for v in map(_sample, points) if v is not None]
            return reduce_points(config.reduce or "last", values)
        if kind == "scalar":
            return _sample(result)
        if kind == "vector":
            series = _one_series(result)
            return None if series is None else _sample(dig(series, "value"))
        if kind == "matrix":
            raise ShapeError(
                "the query is a range vector (x[5m]): wrap it in a function such as "
                "avg_over_time(...) or rate(...), or use mode: range"
            )
        raise ShapeError(f"the query's result is a {kind!r}, not a number")


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _one_series(result: Any) -> Any:
    """The only series of a vector or matrix; None when there is none."""
    if not isinstance(result, list):
        raise ShapeError("data.result is not a list of series")
    if len(result) > 1:
        shown = ", ".join(_labels(series) for series in result[:_SERIES_SHOWN])
        more = ", ..." if len(result) > _SERIES_SHOWN else ""
        # The hint first: the base cuts long messages, and label sets can be long.
        raise ShapeError(
            f"the query returned {len(result)} series, expected one; narrow it to one "
            f"series, e.g. sum(...) or a label matcher. First: {shown}{more}"
        )
    return result[0] if result else None


def _labels(series: Any) -> str:
    metric = series.get("metric", {}) if isinstance(series, dict) else {}
    if not isinstance(metric, dict):
        return "{?}"
    name = str(metric.get("__name__", ""))
    pairs = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{pairs}}}"


def _sample(pair: Any) -> Decimal | None:
    """The value of a ``[timestamp, "value"]`` pair; NaN is None, an infinity an error."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise ShapeError(f'a sample is not [timestamp, "value"]: {str(pair)[:80]}')
    try:
        return to_decimal(pair[1])
    except NotANumberError as exc:
        raise ShapeError(
            f"the query's value is {pair[1]} (a division by zero?), not a finite number"
        ) from exc
