"""``jira``: how many issues a JQL query matches, for delivery KRs.

Jira Cloud: ``POST /rest/api/3/search/approximate-count`` with ``{"jql": ...}``, answered
``{"count": N}`` (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/).
The classic ``/rest/api/3/search`` (``maxResults=0`` -> ``total``) was deprecated in October
2024 and removed from Cloud in 2025 in favour of ``/search/jql``, which no longer returns a
total; the approximate count is the endpoint Atlassian documents for "how many". Jira Data
Center has neither v3 nor the count endpoint: there ``GET /rest/api/2/search`` with
``maxResults=0`` still answers ``total``.

The as-of: ``${as_of}``, ``${as_of:date}``, ``${cycle_start}``... in the JQL become JQL date
literals, always quoted (``resolved <= ${as_of:date}`` -> ``resolved <= "2024-05-01"``; a
placeholder the user already quoted is not quoted twice). Only times are offered: the JQL
is sent as written and quoted in messages, so it holds no secrets.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from okr_pipeline.connectors.api_source import ApiCall, ApiSource, ApiSourceConfig, dig
from okr_pipeline.connectors.auth import SecretName
from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.connectors.templating import TIME_NAMES
from okr_pipeline.okr_core.names import PLACEHOLDER

__all__ = ["JiraSource", "JiraSourceConfig", "render_jql", "time_placeholder_errors"]

_TIME = re.compile(r"(as_of|cycle_start|cycle_end)(?::(date))?")
# A placeholder, with the quotes around it when the user wrote them.
_QUOTED_OR_NOT = re.compile(r"([\"']?)(\$\{([^}]*)\})\1")


def time_placeholder_errors(text: str, field: str, hint: str) -> list[str]:
    """Describe every placeholder of ``text`` that is not a time (no secrets allowed).

    Args:
        text: A query as written in the OKR file.
        field: The field's name, for the message.
        hint: Where a credential goes instead, for the message.

    Returns:
        One message per bad placeholder; empty when all are valid.
    """
    return [
        f"unknown placeholder {match[0]!r} in {field}. Valid: "
        + ", ".join(f"${{{name}}}" for name in TIME_NAMES)
        + f" (optionally with ':date'); {hint}"
        for match in PLACEHOLDER.finditer(text)
        if not _TIME.fullmatch(match[1].strip())
    ]


def render_jql(jql: str, ctx: SourceContext) -> str:
    """Replace the time placeholders of ``jql`` by quoted JQL date literals (UTC).

    Args:
        jql: The JQL; its placeholders were validated with the config.
        ctx: The as-of and the cycle.

    Returns:
        The JQL, e.g. ``resolved <= "2024-05-01"`` or ``created < "2024-05-01 12:00"``.
    """

    def _literal(match: re.Match[str]) -> str:
        time = _TIME.fullmatch(match[3].strip())
        if time is None:  # pragma: no cover - refused when the config was validated
            raise ValueError(f"unknown placeholder {match[2]!r}")
        moment = getattr(ctx, time[1]).astimezone(UTC)
        # Digits, dashes, a space and a colon only: nothing can break out of the quotes.
        text = moment.strftime("%Y-%m-%d" if time[2] == "date" else "%Y-%m-%d %H:%M")
        return f'"{text}"'

    return _QUOTED_OR_NOT.sub(_literal, jql)


class JiraSourceConfig(ApiSourceConfig):
    """A Jira JQL count: the number of issues the query matches."""

    type: Literal["jira"] = Field(description="Jira: the number of issues a JQL query matches.")
    connection: str = Field(
        min_length=1,
        description="Connection in the settings whose url is the Jira site, e.g. "
        "https://your-domain.atlassian.net (Cloud) or https://jira.example.com (Data Center).",
    )
    jql: str = Field(
        min_length=1,
        description="JQL query; ${as_of:date}, ${as_of}, ${cycle_start:date}... become quoted "
        "JQL dates in UTC, e.g. project = OPS AND resolved <= ${as_of:date}. Cloud needs a "
        "bounded query (with a restriction such as project).",
    )
    deployment: Literal["cloud", "data_center"] = Field(
        "cloud",
        description="cloud: POST /rest/api/3/search/approximate-count; data_center: GET "
        "/rest/api/2/search with maxResults=0 (its total).",
    )
    email: str | None = Field(
        None,
        min_length=3,
        description="Atlassian account email for basic authentication (Cloud), with "
        "api_token_secret.",
    )
    api_token_secret: SecretName | None = Field(
        None,
        description="Secret holding the Atlassian API token (Cloud, basic auth with email).",
    )
    token_secret: SecretName | None = Field(
        None,
        description="Secret holding a bearer token: a personal access token (Data Center) "
        "or an OAuth 2.0 access token.",
    )

    @model_validator(mode="after")
    def _check(self) -> JiraSourceConfig:
        errors = time_placeholder_errors(self.jql, "jql", "secrets cannot be used in JQL")
        if errors:
            raise ValueError("; ".join(errors))
        basic = self.email is not None or self.api_token_secret is not None
        if basic and (self.email is None or self.api_token_secret is None):
            raise ValueError("basic authentication needs both email and api_token_secret")
        if basic and self.token_secret is not None:
            raise ValueError(
                "give either email + api_token_secret (Cloud) or token_secret (bearer), not both"
            )
        if not basic and self.token_secret is None:
            raise ValueError(
                "Jira needs credentials: email + api_token_secret (Cloud API token) or "
                "token_secret (Data Center personal access token)"
            )
        return self

    def secret_names(self) -> set[str]:
        """The API token or bearer token secret.

        Returns:
            The one secret name.
        """
        return {name for name in (self.api_token_secret, self.token_secret) if name}

    def uses_as_of(self) -> bool:
        """True when the JQL holds a time placeholder: only then is the count for the as-of.

        Returns:
            Whether the JQL mentions the as-of or the cycle.
        """
        return PLACEHOLDER.search(self.jql) is not None


class JiraSource(ApiSource[JiraSourceConfig]):
    """Counts the Jira issues a JQL query matches (Cloud approximate count, or DC total)."""

    type_name = "jira"
    config_model = JiraSourceConfig
    reads = "the number of issues a JQL query matches"
    authentication = "email + API token (basic, Cloud) or bearer PAT (Data Center)"
    tested_against = "documented shapes (local server)"
    # The site is every team's own: the connection is required, so this is never called.
    default_base_url: ClassVar[str] = "https://your-domain.atlassian.net"

    def build_call(
        self,
        config: JiraSourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """The count request of the config's deployment.

        Args:
            config: The validated config.
            ctx: The as-of and the cycle, for the JQL's placeholders.
            base_url: The Jira site.
            secrets: The token's value.

        Returns:
            The call.
        """
        if config.token_secret is not None:
            authorization = f"Bearer {secrets[config.token_secret]}"
        else:
            assert config.email is not None and config.api_token_secret is not None
            pair = f"{config.email}:{secrets[config.api_token_secret]}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode()
        headers = {"Authorization": authorization, "Accept": "application/json"}
        jql = render_jql(config.jql, ctx)
        if config.deployment == "data_center":
            return ApiCall(
                method="GET",
                url=f"{base_url}/rest/api/2/search",
                params={"jql": jql, "maxResults": "0", "fields": "none"},
                headers=headers,
            )
        return ApiCall(
            method="POST",
            url=f"{base_url}/rest/api/3/search/approximate-count",
            headers=headers,
            json_body={"jql": jql},
        )

    def read_value(self, config: JiraSourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """``count`` (Cloud) or ``total`` (Data Center); a count of 0 is a real 0.

        Returns:
            The number of issues.
        """
        return dig(answer, "total" if config.deployment == "data_center" else "count")
