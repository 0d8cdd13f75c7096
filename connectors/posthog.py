"""PostHog: one value computed by a HogQL query (the query API).

One ``POST /api/projects/{project_id}/query/`` with a personal API key as a bearer token and
``{"query": {"kind": "HogQLQuery", "query": ..., "values": {...}}}``. The window is bound
through HogQL's ``values``: constants the query names as ``{as_of}``, ``{date_from}`` and
``{date_to}``, which PostHog turns into literals while parsing, so nothing is ever formatted
into the query text. The answer's ``results`` is a list of rows; the number is
``results[0][0]``; no row is no data; several rows or columns are an error.
Documented at https://posthog.com/docs/api/queries (request, answer) and in the
``HogQLQuery`` schema (``values``: "constant values that can be referenced with the
{placeholder} syntax in the query").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator

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

__all__ = ["WINDOW_PLACEHOLDERS", "PosthogSource", "PosthogSourceConfig", "hogql_values"]

#: The constants every query may name; all three are UTC ``YYYY-MM-DD HH:MM:SS`` strings.
WINDOW_PLACEHOLDERS = ("as_of", "date_from", "date_to")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


class PosthogSourceConfig(ApiSourceConfig):
    """A HogQL query returning one value, with the window bound as HogQL constants."""

    type: Literal["posthog"] = Field(description="Source type: PostHog HogQL query API.")
    project_id: int = Field(gt=0, description="The PostHog project's id (project settings).")
    query: str = Field(
        min_length=1,
        description="HogQL returning one row of one column; may name {as_of}, {date_from} "
        "and {date_to} (UTC 'YYYY-MM-DD HH:MM:SS'), bound by PostHog as constants.",
    )
    period: Period = Field(
        "cycle",
        description="Window whose bounds are {date_from} and {date_to} (= {as_of}): cycle, "
        "1d, 7d, 28d, 30d or 90d.",
    )
    api_key_secret: SecretName = Field(
        min_length=1,
        description="Secret holding a personal API key with Query Read (OKR_SECRETS__<NAME>).",
    )

    @field_validator("query")
    @classmethod
    def _known_placeholders(cls, query: str) -> str:
        unknown = sorted(set(_PLACEHOLDER.findall(query)) - set(WINDOW_PLACEHOLDERS))
        if unknown:
            raise ValueError(
                f"unknown {'placeholder' if len(unknown) == 1 else 'placeholders'} "
                f"{', '.join('{' + n + '}' for n in unknown)} in the "
                f"HogQL query; valid: {', '.join('{' + n + '}' for n in WINDOW_PLACEHOLDERS)}"
            )
        return query

    def secret_names(self) -> set[str]:
        """The API key's secret.

        Returns:
            ``{api_key_secret}``.
        """
        return {self.api_key_secret}

    def uses_as_of(self) -> bool:
        """Only a query naming the window answers for the as-of (and can be backfilled).

        Returns:
            True when the query names ``{as_of}``, ``{date_from}`` or ``{date_to}``.
        """
        return bool(_PLACEHOLDER.search(self.query))


def hogql_values(config: PosthogSourceConfig, ctx: SourceContext) -> dict[str, str]:
    """The window's bounds as the HogQL constants the query may name.

    Args:
        config: The validated config.
        ctx: The as-of and the cycle.

    Returns:
        ``{"as_of": ..., "date_from": ..., "date_to": ...}``, UTC, to the second.
    """
    start, end = period_bounds(config.period, ctx)
    return {"as_of": _ch(end), "date_from": _ch(start), "date_to": _ch(end)}


def _ch(moment: datetime) -> str:
    # The form ClickHouse compares with a DateTime column without a parse function.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class PosthogSource(ApiSource[PosthogSourceConfig]):
    """Reads one value from PostHog (US cloud; EU or self-hosted by a connection)."""

    type_name = "posthog"
    config_model = PosthogSourceConfig
    default_base_url = "https://us.posthog.com"
    reads = "HogQL query API: one value, the window bound as {date_from}/{date_to}"
    authentication = "personal API key as a bearer token (secret)"
    tested_against = "documented shapes (local server)"

    def build_call(
        self,
        config: PosthogSourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """``POST /api/projects/{id}/query/`` with the HogQL and its window constants."""
        return ApiCall(
            method="POST",
            url=f"{base_url}/api/projects/{config.project_id}/query/",
            headers={"Authorization": f"Bearer {secrets[config.api_key_secret]}"},
            json_body={
                "query": {
                    "kind": "HogQLQuery",
                    "query": config.query,
                    "values": hogql_values(config, ctx),
                }
            },
        )

    def read_value(self, config: PosthogSourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """``results[0][0]``: one row of one column; no row is no data."""
        rows = dig(answer, "results")
        if not isinstance(rows, list):
            raise ShapeError(f"results is {type(rows).__name__}, not a list of rows")
        row = number(rows, "rows")
        if row is None:
            return None
        if not isinstance(row, list):
            raise ShapeError(f"results[0] is {type(row).__name__}, not a row (a list)")
        if len(row) != 1:
            raise ShapeError(
                f"the query returns {len(row)} columns, expected one; select one value"
            )
        return row[0]
