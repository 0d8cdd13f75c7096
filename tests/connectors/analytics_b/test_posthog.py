"""The ``posthog`` connector against a local server in the query API's documented shapes.

Shapes from https://posthog.com/docs/api/queries (``POST /api/projects/:project_id/query/``,
bearer personal API key, ``{"query": {"kind": "HogQLQuery", "query": ...}}``, answer
``results`` as rows) and the ``HogQLQuery`` schema's ``values`` ("constant values that can be
referenced with the {placeholder} syntax in the query").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from okr_pipeline.connectors.api_source import ShapeError
from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.posthog import PosthogSource, PosthogSourceConfig, hogql_values
from tests.connectors.analytics_b import server
from tests.connectors.analytics_b.conftest import AnalyticsContract, environment

WRONG = "phx-wrong-5b0d2e88-SECRET"
SIGNUPS = (
    "SELECT count() FROM events WHERE event = 'signed_up' "
    "AND timestamp >= {date_from} AND timestamp < {date_to}"
)
CTX = SourceContext(
    as_of=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
    cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
    kr_ref="growth/signups",
)


VALID: dict[str, Any] = {
    "type": "posthog",
    "connection": "analytics",
    "project_id": server.POSTHOG_PROJECT,
    "query": SIGNUPS,
    "api_key_secret": "posthog_key",
}


def config(**overrides: Any) -> PosthogSourceConfig:
    return PosthogSourceConfig.model_validate({**VALID, "retries": 0, **overrides})


class TestPosthogContract(AnalyticsContract):
    source_class = PosthogSource
    expected_value = Decimal(318)
    wrong_secret = WRONG
    valid = VALID
    failures: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "timeout": {"project_id": 1, "timeout_seconds": 0.3},
        "rate_limited": {"project_id": 429},
        "server_error": {"project_id": 503},
        "unauthorized": {"api_key_secret": "wrong"},
        "bad_shape": {"query": "SELECT event, count() FROM events GROUP BY event"},
    }


@pytest.mark.parametrize(
    ("period", "date_from"),
    [
        ("cycle", "2024-04-01 00:00:00"),
        ("1d", "2024-04-30 12:00:00"),
        ("7d", "2024-04-24 12:00:00"),
        ("28d", "2024-04-03 12:00:00"),
    ],
)
def test_the_window_is_bound_as_hogql_values(period: str, date_from: str) -> None:
    end = "2024-05-01 12:00:00"
    assert hogql_values(config(period=period), CTX) == {
        "as_of": end,
        "date_from": date_from,
        "date_to": end,
    }


def test_the_query_text_is_sent_unchanged() -> None:
    # The bounds travel as values; the query is never formatted (no injection through it).
    source = PosthogSource(environment("http://unused.invalid"))
    call = source.build_call(config(), CTX, "https://us.posthog.com", {"posthog_key": "k"})
    assert call.url == f"https://us.posthog.com/api/projects/{server.POSTHOG_PROJECT}/query/"
    assert call.json_body["query"]["query"] == SIGNUPS
    assert call.json_body["query"]["kind"] == "HogQLQuery"
    assert call.headers == {"Authorization": "Bearer k"}


def test_only_a_query_naming_the_window_can_be_backfilled() -> None:
    assert config().uses_as_of()
    assert not config(query="SELECT count() FROM persons").uses_as_of()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, Decimal(318)),
        (
            {"query": "SELECT avg(properties.amount) FROM events WHERE event = 'paid'"},
            Decimal("12.75"),
        ),
        ({"query": "SELECT count() FROM events WHERE event = 'never'"}, None),
    ],
    ids=["count", "decimal", "no-row"],
)
def test_fetch(
    overrides: dict[str, Any],
    expected: Decimal | None,
    analytics_env: SourceEnvironment,
    analytics_cassette: Any,
) -> None:
    with PosthogSource(analytics_env) as source:
        value = source.fetch(config(**overrides), CTX)
    assert value == expected and (value is None or type(value) is Decimal)
    assert analytics_cassette.play_count == 1 or analytics_cassette.dirty  # replayed, or recorded


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"query": "SELECT event, count() FROM events GROUP BY event"},
            "2 rows in the answer, expected one",
        ),
        (
            {"query": "SELECT count() FROM events WHERE event IN ('a', 'b') GROUP BY event"},
            "2 rows in the answer, expected one",
        ),
        ({"query": "SELECT nonsense FROM nowhere"}, "HTTP 400"),
        ({"project_id": 7}, "HTTP 404"),
        ({"api_key_secret": "plausible_key"}, "HTTP 401"),
    ],
    ids=["two-rows-two-columns", "two-rows", "bad-query", "unknown-project", "wrong-key"],
)
def test_errors_are_fatal_and_name_the_kr(
    overrides: dict[str, Any],
    message: str,
    analytics_env: SourceEnvironment,
    analytics_cassette: Any,
) -> None:
    with PosthogSource(analytics_env) as source, pytest.raises(FatalSourceError) as caught:
        source.fetch(config(**overrides), CTX)
    assert message in str(caught.value)
    assert str(caught.value).startswith("KR growth/signups: posthog source POST ")


def test_several_columns_are_an_error() -> None:
    source = PosthogSource(environment("http://unused.invalid"))
    answer = {"columns": ["a", "b"], "results": [[1, 2]]}
    with pytest.raises(ShapeError, match="returns 2 columns, expected one"):
        source.read_value(config(), CTX, answer)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"query": "SELECT count() WHERE timestamp < {now}"}, "unknown placeholder {now}"),
        ({"project_id": 0}, "greater than 0"),
        ({"query": ""}, "at least 1 character"),
        ({"period": "week"}, "'cycle', '1d'"),
    ],
)
def test_config_messages(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        config(**overrides)
    assert message in str(caught.value)
