"""Google Analytics 4: one metric over the KR's period (Data API ``runReport``).

Calls ``POST /v1beta/properties/{property_id}:runReport`` with one date range (the
period's first and last day, ``YYYY-MM-DD``, both included), the metric and an optional
``dimensionFilter``, and no dimensions, so the answer has one row: the number is
``rows[0].metricValues[0].value`` (GA4 sends it as a string); an answer without rows is no
data. Documented at
https://developers.google.com/analytics/devguides/reporting/data/v1/rest/v1beta/properties/runReport.

Signs in as a service account: the key file's JSON is a secret; a JWT signed with its
private key is exchanged at the key's ``token_uri`` for an access token
(``connectors.google_auth``), cached until shortly before it expires and sent as a bearer
token. GA4's days are those of the property's time zone; the range is computed in UTC.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field

from okr_pipeline.connectors.api_source import (
    ApiCall,
    ApiSource,
    ApiSourceConfig,
    Period,
    ShapeError,
    dig,
    period_days,
)
from okr_pipeline.connectors.auth import SecretName
from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.google_auth import TokenCache
from okr_pipeline.okr_core.names import SECRET_NAME_RULE

__all__ = ["SCOPE", "GoogleAnalyticsSource", "GoogleAnalyticsSourceConfig"]

SCOPE = "https://www.googleapis.com/auth/analytics.readonly"


class GoogleAnalyticsSourceConfig(ApiSourceConfig):
    """One GA4 metric over the KR's period, optionally filtered by dimensions."""

    type: Literal["google_analytics"] = Field(description="Google Analytics 4 Data API runReport.")
    property_id: str = Field(
        pattern=r"^[0-9]+$",
        description="The GA4 property's numeric id (Admin > Property details), not the "
        "G-... measurement id.",
    )
    metric: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_:]*$",
        description="GA4 metric API name, e.g. activeUsers, sessions, conversions, totalRevenue.",
    )
    dimension_filter: dict[str, Any] | None = Field(
        None,
        description="A GA4 FilterExpression sent as dimensionFilter, e.g. {filter: "
        "{fieldName: country, stringFilter: {value: France}}}.",
    )
    period: Period = Field(
        "28d",
        description="Days reported, ending at the as-of: cycle, 1d, 7d, 28d, 30d or 90d.",
    )
    credentials_secret: SecretName = Field(
        min_length=1,
        description="Secret holding the service account's JSON key file (the account needs "
        f"Viewer on the property): {SECRET_NAME_RULE}.",
    )

    def secret_names(self) -> set[str]:
        """The service-account key.

        Returns:
            The secret name.
        """
        return {self.credentials_secret}


class GoogleAnalyticsSource(ApiSource[GoogleAnalyticsSourceConfig]):
    """Reads one GA4 metric over the KR's period.

    Args:
        env: Connections and secrets of this run.
        sleep: Called to wait between retries; injectable so tests need not wait.
        random: Numbers in [0, 1) for the retry jitter; injectable so tests can fix them.
        clock: Unix time now, for the sign-in's JWT and the token cache.
    """

    type_name = "google_analytics"
    config_model = GoogleAnalyticsSourceConfig
    default_base_url: ClassVar[str] = "https://analyticsdata.googleapis.com"
    reads = "a GA4 metric over the period (Data API runReport)"
    authentication = "service-account JSON key (secret): signed JWT for an access token"
    tested_against = "documented shapes (local server)"

    def __init__(
        self,
        env: SourceEnvironment,
        *,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(env, sleep=sleep, random=random)
        self._tokens = TokenCache(self._client, clock)

    def fetch(self, config: GoogleAnalyticsSourceConfig, ctx: SourceContext) -> Decimal | None:
        """:meth:`ApiSource.fetch`; a token refused with 401 is forgotten for the next one.

        Raises:
            RetriableSourceError: As :meth:`ApiSource.fetch`.
            FatalSourceError: As :meth:`ApiSource.fetch`.
        """
        try:
            return super().fetch(config, ctx)
        except FatalSourceError as exc:
            if exc.status == 401 and config.credentials_secret in self.env.secrets:
                key = self.env.secrets[config.credentials_secret].get_secret_value()
                self._tokens.forget(key, SCOPE)
            raise

    def build_call(
        self,
        config: GoogleAnalyticsSourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """Sign in (or reuse the cached token), then ``runReport`` for the period's days."""
        settings = ApiCall(
            method="POST",
            url="",
            timeout=config.timeout_seconds or self._connection_timeout(config),
            max_bytes=config.max_response_bytes,
            retries=config.retries,
            backoff_seconds=config.backoff_seconds,
        )
        where = f"KR {ctx.kr_ref}: {self.type_name} source"
        token = self._tokens.token(secrets[config.credentials_secret], SCOPE, settings, where)
        first, last = period_days(config.period, ctx)
        body: dict[str, Any] = {
            "dateRanges": [{"startDate": first.isoformat(), "endDate": last.isoformat()}],
            "metrics": [{"name": config.metric}],
        }
        if config.dimension_filter is not None:
            body["dimensionFilter"] = config.dimension_filter
        return ApiCall(
            method="POST",
            url=f"{base_url}/v1beta/properties/{config.property_id}:runReport",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            json_body=body,
        )

    def read_value(
        self, config: GoogleAnalyticsSourceConfig, ctx: SourceContext, answer: Any
    ) -> Any:
        """``rows[0].metricValues[0].value``; an answer without rows is no data.

        Raises:
            ShapeError: Not the documented shape, or more than one row.
        """
        if not isinstance(answer, dict):
            raise ShapeError("the answer is not a JSON object")
        rows = answer.get("rows")
        if rows is None or rows == []:
            return None
        if not isinstance(rows, list):
            raise ShapeError("the answer's 'rows' is not a list")
        if len(rows) > 1:
            raise ShapeError(f"{len(rows)} rows in the answer, expected one")
        return dig(answer, "rows", 0, "metricValues", 0, "value")
