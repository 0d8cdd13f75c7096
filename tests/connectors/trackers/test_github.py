"""The ``github`` source against a local server answering in GitHub's documented shapes.

``GET /search/issues?q=`` -> ``{"total_count", "incomplete_results", "items"}``
(https://docs.github.com/en/rest/search/search#search-issues-and-pull-requests); rate limits
as 403/429 with ``x-ratelimit-remaining: 0`` / ``x-ratelimit-reset``, or ``retry-after``
(https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from okr_pipeline.connectors.base import BaseSource, SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.connectors.github import GithubSource, GithubSourceConfig, build_query
from okr_pipeline.connectors.testing import ConnectorContract
from tests.connectors.trackers import servers
from tests.connectors.trackers.conftest import environment

BASE = {"type": "github", "connection": "site", "repo": "acme/app", "token_secret": "gh_token"}
NOW = float(servers.RESET_AT - 2)  # two seconds before the server's rate-limit reset


def source(env: SourceEnvironment, waits: list[float] | None = None) -> GithubSource:
    sleep = waits.append if waits is not None else (lambda s: None)
    return GithubSource(env, sleep=sleep, random=lambda: 0.5, clock=lambda: NOW)


def fetch(env: SourceEnvironment, ctx: SourceContext, **raw: Any) -> Decimal | None:
    with source(env) as src:
        return src.fetch(GithubSourceConfig.model_validate(raw), ctx)


def test_query_of_the_window(ctx: SourceContext) -> None:
    config = GithubSourceConfig.model_validate(
        {**BASE, "kind": "pr", "state": "merged", "date_field": "merged", "period": "7d"}
    )
    assert build_query(config, ctx) == (
        "repo:acme/app is:pr is:merged merged:2024-04-24T12:00:00Z..2024-05-01T12:00:00Z"
    )
    assert config.uses_as_of()
    plain = GithubSourceConfig.model_validate({**BASE, "kind": "pr", "state": "open"})
    assert not plain.uses_as_of()


@pytest.mark.usefixtures("cassette")
def test_issues_closed_in_the_cycle(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    assert fetch(live_env, ctx, **BASE, kind="issue", date_field="closed") == Decimal(31)


@pytest.mark.usefixtures("cassette")
def test_prs_merged_in_the_last_week(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    raw = {**BASE, "kind": "pr", "state": "merged", "date_field": "merged", "period": "7d"}
    assert fetch(live_env, ctx, **raw) == Decimal(12)


@pytest.mark.usefixtures("cassette")
def test_org_with_placeholder_qualifiers_anonymous(
    live_env: SourceEnvironment, ctx: SourceContext
) -> None:
    raw = {
        "type": "github",
        "connection": "site",
        "org": "acme",
        "kind": "issue",
        "state": "open",
        "query": "label:bug created:<=${as_of:date}",
    }
    assert fetch(live_env, ctx, **raw) == Decimal(4)


@pytest.mark.usefixtures("cassette")
def test_no_open_prs_is_a_real_zero(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    assert fetch(live_env, ctx, **BASE, kind="pr", state="open") == Decimal(0)


@pytest.mark.usefixtures("cassette")
def test_incomplete_results_is_retriable(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    with pytest.raises(RetriableSourceError, match="incomplete_results"):
        fetch(live_env, ctx, **BASE, kind="issue", query="label:incomplete")


@pytest.mark.usefixtures("cassette")
def test_forbidden_without_rate_limit_is_fatal(
    live_env: SourceEnvironment, ctx: SourceContext
) -> None:
    with pytest.raises(FatalSourceError, match=r"HTTP 403.*not accessible"):
        fetch(live_env, ctx, **BASE, kind="issue", query="label:forbidden")


@pytest.mark.parametrize(
    ("label", "wait"),
    [
        ("ratelimited-once", 2.0),  # 403, remaining 0: until x-ratelimit-reset
        ("secondary", 1.0),  # 403 with retry-after (secondary rate limit)
    ],
)
def test_rate_limit_is_waited_for(
    live_env: SourceEnvironment, ctx: SourceContext, label: str, wait: float
) -> None:
    waits: list[float] = []
    raw = {**BASE, "kind": "issue", "query": f"label:{label} label:r{uuid.uuid4().hex}"}
    with source(live_env, waits) as src:
        assert src.fetch(GithubSourceConfig.model_validate(raw), ctx) == Decimal(6)
    assert waits == [wait]


def test_long_reset_gives_up_retriable(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    waits: list[float] = []
    raw = {**BASE, "kind": "issue", "query": "label:ratelimited-long"}
    with source(live_env, waits) as src, pytest.raises(RetriableSourceError, match="403"):
        src.fetch(GithubSourceConfig.model_validate(raw), ctx)
    assert waits == []  # an hour is not waited for; the next run tries again


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "issue"}, "repo .owner/name. or org, exactly one"),
        ({"kind": "issue", "repo": "acme"}, "is not owner/name"),
        ({"kind": "issue", "repo": "a/b", "state": "merged"}, "pull requests only"),
        ({"kind": "pr", "repo": "a/b", "query": "${secret:gh_token}"}, "token_secret"),
        ({"kind": "bug", "repo": "a/b"}, "kind"),
    ],
)
def test_config_messages(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GithubSourceConfig.model_validate({"type": "github", **raw})


class TestGithubContract(ConnectorContract):
    source_class = GithubSource
    expected_value = Decimal(31)

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        return source(env)

    def environment(self) -> SourceEnvironment:
        return environment(self.fixture("tracker_url"))

    def valid_config(self) -> Mapping[str, Any]:
        return {**BASE, "kind": "issue", "date_field": "closed"}

    def failing_config(self, scenario: str) -> Mapping[str, Any] | None:
        labels = {
            "timeout": "slow",
            "rate_limited": "too-many",
            "server_error": "down",
            "bad_shape": "shape",
        }
        config: dict[str, Any] = {**self.valid_config(), "retries": 1, "timeout_seconds": 0.5}
        if scenario == "unauthorized":
            return {**config, "token_secret": "jira_token"}
        return {**config, "query": f"label:{labels[scenario]}"}
