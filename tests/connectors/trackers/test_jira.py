"""The ``jira`` source against a local server answering in Jira's documented shapes.

Shapes (see ``servers.py``): Cloud ``POST /rest/api/3/search/approximate-count`` ->
``{"count"}`` (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/),
Data Center ``GET /rest/api/2/search?maxResults=0`` -> ``{"total"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from okr_pipeline.connectors.base import BaseSource, SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.jira import JiraSource, JiraSourceConfig, render_jql
from okr_pipeline.connectors.testing import ConnectorContract
from tests.connectors.trackers import servers
from tests.connectors.trackers.conftest import environment

CLOUD = {
    "type": "jira",
    "connection": "site",
    "email": servers.EMAIL,
    "api_token_secret": "jira_token",
}
DC = {"type": "jira", "connection": "site", "deployment": "data_center", "token_secret": "jira_pat"}


def fetch(env: SourceEnvironment, ctx: SourceContext, **raw: Any) -> Decimal | None:
    with JiraSource(env, sleep=lambda s: None) as source:
        return source.fetch(JiraSourceConfig.model_validate(raw), ctx)


def test_placeholders_become_quoted_utc_dates(ctx: SourceContext) -> None:
    assert render_jql("resolved <= ${as_of:date}", ctx) == 'resolved <= "2024-05-01"'
    # Already quoted by the user: not quoted twice.
    assert render_jql('resolved <= "${as_of:date}"', ctx) == 'resolved <= "2024-05-01"'
    assert render_jql("created >= '${cycle_start}'", ctx) == 'created >= "2024-04-01 00:00"'
    assert render_jql("x", ctx) == "x"


@pytest.mark.usefixtures("cassette")
def test_cloud_count_as_of(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    jql = "project = OPS AND resolved <= ${as_of:date}"
    assert fetch(live_env, ctx, **CLOUD, jql=jql) == Decimal(17)


@pytest.mark.usefixtures("cassette")
def test_cloud_count_in_the_cycle(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    jql = "project = OPS AND resolved >= ${cycle_start} AND resolved <= ${as_of}"
    assert fetch(live_env, ctx, **CLOUD, jql=jql) == Decimal(9)


@pytest.mark.usefixtures("cassette")
def test_zero_is_a_real_zero(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    jql = "project = OPS AND statusCategory != Done"
    assert fetch(live_env, ctx, **CLOUD, jql=jql) == Decimal(0)


@pytest.mark.usefixtures("cassette")
def test_data_center_total(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    jql = 'project = OPS AND resolved <= "${as_of:date}"'
    assert fetch(live_env, ctx, **DC, jql=jql) == Decimal(17)


@pytest.mark.usefixtures("cassette")
def test_bad_jql_is_fatal_and_quotes_jira(live_env: SourceEnvironment, ctx: SourceContext) -> None:
    with pytest.raises(FatalSourceError, match=r"HTTP 400.*Error in the JQL Query") as info:
        fetch(live_env, ctx, **CLOUD, jql="project = NOPE")
    assert "delivery/kr" in str(info.value) and servers.JIRA_TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"jql": "x"}, "needs credentials"),
        ({"jql": "x", "email": "a@b.c"}, "needs both email and api_token_secret"),
        ({**CLOUD, "jql": "x", "token_secret": "t"}, "not both"),
        ({**CLOUD, "jql": "key = ${secret:jira_token}"}, "secrets cannot be used in JQL"),
        ({**CLOUD, "jql": "resolved <= ${asof}"}, "unknown placeholder"),
    ],
)
def test_config_messages(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        JiraSourceConfig.model_validate({"type": "jira", "connection": "site", **raw})


def test_connection_is_required() -> None:
    raw = {k: v for k, v in CLOUD.items() if k != "connection"}
    with pytest.raises(ValidationError, match="connection"):
        JiraSourceConfig.model_validate({**raw, "jql": "x"})


def test_as_of_only_with_a_placeholder() -> None:
    assert JiraSourceConfig.model_validate({**CLOUD, "jql": "r <= ${as_of:date}"}).uses_as_of()
    assert not JiraSourceConfig.model_validate({**CLOUD, "jql": "project = X"}).uses_as_of()


class TestJiraContract(ConnectorContract):
    source_class = JiraSource
    expected_value = Decimal(17)

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        return JiraSource(env, sleep=lambda s: None)

    def environment(self) -> SourceEnvironment:
        return environment(self.fixture("tracker_url"))

    def valid_config(self) -> Mapping[str, Any]:
        return {**CLOUD, "jql": "project = OPS AND resolved <= ${as_of:date}"}

    def failing_config(self, scenario: str) -> Mapping[str, Any] | None:
        projects = {
            "timeout": "SLOW",
            "rate_limited": "BUSY",
            "server_error": "DOWN",
            "bad_shape": "SHAPE",
            "unauthorized": "OPS",
        }
        config = {
            **self.valid_config(),
            "jql": f"project = {projects[scenario]}",
            "retries": 1,
            "timeout_seconds": 0.5,
        }
        if scenario == "unauthorized":
            config["api_token_secret"] = "jira_pat"  # a real secret, the wrong one
        return config
