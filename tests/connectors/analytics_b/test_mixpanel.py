"""The ``mixpanel`` connector against a local server in the Query API's documented shapes.

Shapes from https://docs.mixpanel.com/reference/segmentation-query (``GET
/api/query/segmentation``, service-account Basic auth, ``project_id``, ``event``,
``from_date``, ``to_date``, ``unit`` / ``interval``, ``type``, ``where``; the answer's
``data.values[event][day]``). The local server counts ``day-of-month`` events a day, so a
sum shows exactly which days were asked for.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.mixpanel import (
    MixpanelSource,
    MixpanelSourceConfig,
    segmentation_params,
    window_days,
)
from tests.connectors.analytics_b import server
from tests.connectors.analytics_b.conftest import AnalyticsContract, environment

WRONG = "mps-wrong-e41c09a2-SECRET"
NOON = SourceContext(
    as_of=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
    cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
    kr_ref="growth/signups",
)
MIDNIGHT = SourceContext(
    datetime(2024, 5, 1, tzinfo=UTC), NOON.cycle_start, NOON.cycle_end, NOON.kr_ref
)


VALID: dict[str, Any] = {
    "type": "mixpanel",
    "connection": "analytics",
    "project_id": server.MIXPANEL_PROJECT,
    "event": "Signed up",
    "service_account": server.MIXPANEL_ACCOUNT,
    "service_account_secret": "mixpanel_secret",
}


def config(**overrides: Any) -> MixpanelSourceConfig:
    return MixpanelSourceConfig.model_validate({**VALID, "retries": 0, **overrides})


class TestMixpanelContract(AnalyticsContract):
    source_class = MixpanelSource
    # The cycle to the noon of 1 May: 1 + 2 + ... + 30 (April) + 1 (1 May).
    expected_value = Decimal(466)
    wrong_secret = WRONG
    valid = VALID
    failures: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "timeout": {"event": "slow", "timeout_seconds": 0.3},
        "rate_limited": {"event": "busy"},
        "server_error": {"event": "down"},
        "unauthorized": {"service_account_secret": "wrong"},
        "bad_shape": {"event": "Broken"},
    }


@pytest.mark.parametrize(
    ("period", "ctx", "days"),
    [
        ("cycle", MIDNIGHT, ("2024-04-01", "2024-04-30")),
        ("cycle", NOON, ("2024-04-01", "2024-05-01")),
        ("1d", MIDNIGHT, ("2024-04-30", "2024-04-30")),
        ("7d", MIDNIGHT, ("2024-04-24", "2024-04-30")),
        ("7d", NOON, ("2024-04-24", "2024-05-01")),
        ("90d", MIDNIGHT, ("2024-02-01", "2024-04-30")),
    ],
)
def test_the_window_is_the_days_it_touches(
    period: str, ctx: SourceContext, days: tuple[str, str]
) -> None:
    first, last = window_days(config(period=period).period, ctx)
    assert (first.isoformat(), last.isoformat()) == days


def test_an_as_of_at_the_cycle_start_asks_for_its_first_day() -> None:
    start = SourceContext(NOON.cycle_start, NOON.cycle_start, NOON.cycle_end, NOON.kr_ref)
    assert window_days("cycle", start) == (date(2024, 4, 1), date(2024, 4, 1))


def test_general_counts_by_day_and_uniques_ask_for_one_bucket() -> None:
    general = segmentation_params(
        config(period="7d", where='properties["plan"] == "pro"'), MIDNIGHT
    )
    assert general == {
        "project_id": str(server.MIXPANEL_PROJECT),
        "event": "Signed up",
        "from_date": "2024-04-24",
        "to_date": "2024-04-30",
        "type": "general",
        "unit": "day",
        "where": 'properties["plan"] == "pro"',
    }
    unique = segmentation_params(config(period="7d", count="unique"), MIDNIGHT)
    assert unique["interval"] == "7" and "unit" not in unique and unique["type"] == "unique"


def test_service_account_basic_auth_and_default_base() -> None:
    source = MixpanelSource(environment("http://unused.invalid"))
    call = source.build_call(config(), NOON, "https://mixpanel.com", {"mixpanel_secret": "s3"})
    assert call.method == "GET" and call.url == "https://mixpanel.com/api/query/segmentation"
    token = base64.b64encode(f"{server.MIXPANEL_ACCOUNT}:s3".encode()).decode()
    assert call.headers == {"Authorization": f"Basic {token}"}
    assert MixpanelSource.default_base_url == "https://mixpanel.com"


@pytest.mark.parametrize(
    ("overrides", "ctx", "expected"),
    [
        ({}, MIDNIGHT, Decimal(465)),  # 1 + ... + 30: the April days of the cycle
        ({"period": "7d"}, MIDNIGHT, Decimal(24 + 25 + 26 + 27 + 28 + 29 + 30)),
        ({"period": "7d", "count": "unique"}, MIDNIGHT, Decimal(7)),
        ({"event": "Never"}, MIDNIGHT, None),
    ],
    ids=["cycle-sum", "7d-sum", "7d-unique", "no-series"],
)
def test_fetch(
    overrides: dict[str, Any],
    ctx: SourceContext,
    expected: Decimal | None,
    analytics_env: SourceEnvironment,
    analytics_cassette: Any,
) -> None:
    with MixpanelSource(analytics_env) as source:
        value = source.fetch(config(**overrides), ctx)
    assert value == expected and (value is None or type(value) is Decimal)
    assert analytics_cassette.play_count == 1 or analytics_cassette.dirty  # replayed, or recorded


REPORT = {"event": None, "bookmark_id": 101}


def test_a_saved_report_is_read_by_its_bookmark_and_not_backfilled() -> None:
    report = config(**REPORT)
    assert segmentation_params(report, MIDNIGHT) == {
        "project_id": str(server.MIXPANEL_PROJECT),
        "bookmark_id": "101",
    }
    source = MixpanelSource(environment("http://unused.invalid"))
    call = source.build_call(report, NOON, "https://eu.mixpanel.com", {"mixpanel_secret": "s"})
    assert call.url == "https://eu.mixpanel.com/api/query/insights"
    assert not report.uses_as_of() and config().uses_as_of()


@pytest.mark.parametrize(
    ("bookmark", "expected"),
    [(101, Decimal(9852)), (102, Decimal(10100)), (104, None)],
    ids=["one-number", "newest-date", "empty"],
)
def test_fetch_report(
    bookmark: int,
    expected: Decimal | None,
    analytics_env: SourceEnvironment,
    analytics_cassette: Any,
) -> None:
    with MixpanelSource(analytics_env) as source:
        value = source.fetch(config(event=None, bookmark_id=bookmark), MIDNIGHT)
    assert value == expected and (value is None or type(value) is Decimal)
    assert analytics_cassette.play_count == 1 or analytics_cassette.dirty  # replayed, or recorded


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({**REPORT, "bookmark_id": 103}, "the report has a breakdown"),
        ({**REPORT, "bookmark_id": 999}, "HTTP 400"),
        ({"event": "Split"}, "2 series in the answer, expected one"),
        ({"event": "Broken"}, "is not an object of day: value"),
        ({"project_id": 1}, "HTTP 403"),
        ({"service_account": "someone-else"}, "HTTP 401"),
    ],
    ids=["breakdown", "no-report", "two-series", "not-by-day", "other-project", "wrong-account"],
)
def test_errors_are_fatal_and_name_the_kr(
    overrides: dict[str, Any],
    message: str,
    analytics_env: SourceEnvironment,
    analytics_cassette: Any,
) -> None:
    with MixpanelSource(analytics_env) as source, pytest.raises(FatalSourceError) as caught:
        source.fetch(config(**overrides), MIDNIGHT)
    assert message in str(caught.value)
    assert str(caught.value).startswith("KR growth/signups: mixpanel source GET ")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"count": "total"}, "'general', 'unique' or 'average'"),
        ({"event": ""}, "at least 1 character"),
        ({"service_account_secret": "no spaces"}, "is not a secret name"),
        ({"project_id": -3}, "greater than 0"),
        ({"event": None}, "set either 'event' (segmentation) or 'bookmark_id'"),
        ({"bookmark_id": 5}, "set either 'event' (segmentation) or 'bookmark_id'"),
        ({**REPORT, "period": "7d"}, "period apply to an event, not to a saved report"),
    ],
)
def test_config_messages(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        config(**overrides)
    assert message in str(caught.value)
