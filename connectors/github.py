"""``github``: how many issues or pull requests a search matches, for delivery KRs.

``GET /search/issues?q=...`` answers ``{"total_count", "incomplete_results", "items"}``
(https://docs.github.com/en/rest/search/search#search-issues-and-pull-requests); ``q`` is
built from the config: ``repo:`` or ``org:``, ``is:issue``/``is:pr``, the state, the
as-of window on one date field (``closed:2024-04-01T00:00:00Z..2024-05-01T12:00:00Z``,
https://docs.github.com/en/search-github/getting-started-with-searching-on-github/understanding-the-search-syntax)
and the user's own qualifiers, where ``${as_of:date}`` and the like become dates.
``per_page=1``: only the count is read.

``incomplete_results: true`` means the search timed out on GitHub's side and the count may
be short: that is a retriable error (the next run asks again), never a stored undercount.
The rate limit answers 403 or 429 with ``x-ratelimit-remaining: 0`` and the reset time in
``x-ratelimit-reset`` (epoch seconds), or a secondary limit with ``retry-after``
(https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api): both are
retried after that wait when it is short, and given up (retriable) when it is not.
"""

from __future__ import annotations

import random as _random
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from okr_pipeline.connectors.api_source import (
    ApiCall,
    ApiSource,
    ApiSourceConfig,
    Period,
    ShapeError,
    dig,
    period_bounds,
)
from okr_pipeline.connectors.auth import SecretName
from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import RetriableSourceError
from okr_pipeline.connectors.http_deadline import Answer
from okr_pipeline.connectors.jira import time_placeholder_errors
from okr_pipeline.connectors.templating import render
from okr_pipeline.okr_core.names import PLACEHOLDER
from okr_pipeline.okr_core.retry import retry_after_seconds

__all__ = ["API_VERSION", "GithubSource", "GithubSourceConfig", "build_query"]

#: The REST API version asked for (``X-GitHub-Api-Version``).
API_VERSION = "2022-11-28"
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_OWNER = re.compile(r"[A-Za-z0-9-]+")
_STATES = {
    "open": "is:open",
    "closed": "is:closed",
    "merged": "is:merged",
    "unmerged": "is:unmerged",
}


class GithubSourceConfig(ApiSourceConfig):
    """A GitHub search count: issues or pull requests of a repository or organization."""

    type: Literal["github"] = Field(
        description="GitHub: the number of issues or pull requests a search matches."
    )
    repo: str | None = Field(
        None, description="Repository as owner/name (the search's repo: qualifier)."
    )
    org: str | None = Field(
        None, description="Organization or user, instead of repo (the org: qualifier)."
    )
    kind: Literal["issue", "pr"] = Field(
        description="Count issues (is:issue) or pull requests (is:pr).",
    )
    state: Literal["any", "open", "closed", "merged", "unmerged"] = Field(
        "any",
        description="State today (is:open...); merged/unmerged only for pull requests. For a "
        "count as of a past date, use date_field instead: states are not historical.",
    )
    date_field: Literal["created", "closed", "merged", "updated"] | None = Field(
        None,
        description="Count only items whose date falls in the period ending at the as-of "
        "(e.g. closed: issues closed this cycle).",
    )
    period: Period = Field(
        "cycle",
        description="Window of date_field ending at the as-of: cycle, 1d, 7d, 28d, 30d, 90d.",
    )
    query: str = Field(
        "",
        description="More search qualifiers, e.g. 'label:bug -label:wontfix'; ${as_of:date}, "
        "${cycle_start:date}... become dates (closed:<=${as_of:date}).",
    )
    token_secret: SecretName | None = Field(
        None,
        description="Secret holding a token (bearer; fine-grained or classic); without one "
        "the search is anonymous (10 requests a minute, public repositories).",
    )

    @model_validator(mode="after")
    def _check(self) -> GithubSourceConfig:
        if (self.repo is None) == (self.org is None):
            raise ValueError("give repo (owner/name) or org, exactly one")
        if self.repo is not None and not _REPO.fullmatch(self.repo):
            raise ValueError(f"repo {self.repo!r} is not owner/name")
        if self.org is not None and not _OWNER.fullmatch(self.org):
            raise ValueError(f"org {self.org!r} is not an organization or user name")
        if self.kind == "issue" and (
            self.state in ("merged", "unmerged") or self.date_field == "merged"
        ):
            raise ValueError("merged/unmerged apply to pull requests only (kind: pr)")
        errors = time_placeholder_errors(self.query, "query", "the token goes in token_secret")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def secret_names(self) -> set[str]:
        """The token's secret, if any.

        Returns:
            ``{token_secret}`` or an empty set.
        """
        return {self.token_secret} if self.token_secret else set()

    def uses_as_of(self) -> bool:
        """True with a date window or a time placeholder: only then is it for the as-of.

        Returns:
            Whether the search depends on the as-of.
        """
        return self.date_field is not None or PLACEHOLDER.search(self.query) is not None


def build_query(config: GithubSourceConfig, ctx: SourceContext) -> str:
    """The search's ``q``: scope, kind, state, the as-of window and the user's qualifiers.

    Args:
        config: The validated config.
        ctx: The as-of and the cycle.

    Returns:
        E.g. ``repo:o/r is:issue closed:2024-04-01T00:00:00Z..2024-05-01T12:00:00Z label:bug``.
    """
    parts = [f"repo:{config.repo}" if config.repo else f"org:{config.org}", f"is:{config.kind}"]
    if config.state != "any":
        parts.append(_STATES[config.state])
    if config.date_field is not None:
        start, end = period_bounds(config.period, ctx)
        parts.append(f"{config.date_field}:{_stamp(start)}..{_stamp(end)}")
    extra = render(config.query, ctx, {}).strip()
    if extra:
        parts.append(extra)
    return " ".join(parts)


def _stamp(moment: Any) -> str:
    # "Z", not "+00:00": a "+" in q would have to survive URL encoding as a literal plus.
    return str(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


class GithubSource(ApiSource[GithubSourceConfig]):
    """Counts GitHub issues or pull requests with the search API.

    Args:
        env: Connections and secrets of this run.
        sleep: Called to wait between retries.
        random: Numbers in [0, 1) for the retry jitter.
        clock: Seconds since the epoch, for the rate limit's reset time; injectable so
            tests can fix it.
    """

    type_name = "github"
    config_model = GithubSourceConfig
    reads = "the number of issues or pull requests a search matches"
    authentication = "bearer token (secret), optional"
    tested_against = "documented shapes (local server)"
    default_base_url: ClassVar[str] = "https://api.github.com"

    def __init__(
        self,
        env: SourceEnvironment,
        *,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(env, sleep=sleep, random=random)
        self._clock = clock

    def build_call(
        self,
        config: GithubSourceConfig,
        ctx: SourceContext,
        base_url: str,
        secrets: Mapping[str, str],
    ) -> ApiCall:
        """``GET /search/issues`` with the query, one item per page, the API version.

        Args:
            config: The validated config.
            ctx: The as-of and the cycle.
            base_url: https://api.github.com, or a GitHub Enterprise Server's
                ``https://HOST/api/v3``.
            secrets: The token's value.

        Returns:
            The call.
        """
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if config.token_secret is not None:
            headers["Authorization"] = f"Bearer {secrets[config.token_secret]}"
        return ApiCall(
            method="GET",
            url=f"{base_url}/search/issues",
            params={"q": build_query(config, ctx), "per_page": "1"},
            headers=headers,
            retry_answer=self.rate_limit_wait,
        )

    def rate_limit_wait(self, answer: Answer) -> float | None:
        """How long GitHub asks to wait when an answer is its rate limit, else None.

        Args:
            answer: An unsuccessful answer.

        Returns:
            Seconds to wait (``retry-after``, or until ``x-ratelimit-reset`` when
            ``x-ratelimit-remaining`` is 0), or None for an answer that is not a rate limit
            (a 403 for missing permissions stays fatal).
        """
        if answer.status not in (403, 429):
            return None
        waited = retry_after_seconds(answer.headers.get("retry-after"))
        if waited is not None:
            return waited
        if answer.headers.get("x-ratelimit-remaining") == "0":
            try:
                reset = float(answer.headers.get("x-ratelimit-reset", ""))
            except ValueError:
                return None if answer.status == 403 else 0.0
            return max(0.0, reset - self._clock())
        return None

    def read_value(self, config: GithubSourceConfig, ctx: SourceContext, answer: Any) -> Any:
        """``total_count``, unless GitHub says its search was cut short.

        Returns:
            The count.

        Raises:
            ShapeError: No ``total_count`` or ``incomplete_results``.
            RetriableSourceError: ``incomplete_results`` is true: the count may be short.
        """
        incomplete = dig(answer, "incomplete_results")
        if not isinstance(incomplete, bool):
            raise ShapeError(f"incomplete_results is {incomplete!r}, not true or false")
        if incomplete:
            raise RetriableSourceError(
                f"KR {ctx.kr_ref}: github source: GitHub's search timed out "
                "(incomplete_results: true), so total_count may be short; not stored, the "
                "next run asks again"
            )
        return dig(answer, "total_count")
