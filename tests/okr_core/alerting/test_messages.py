"""Grouping per route and what a message says; payloads for records and events."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from okr_pipeline.okr_core.alerting.messages import MISSING, Message, group, headline, payload
from okr_pipeline.okr_core.alerting.model import AlertKind, Delivery, Notification, Transition
from okr_pipeline.okr_core.alerting.routing import Route, RoutingConfig

from .support import kr

ROUTING = RoutingConfig(
    report_url="https://okr.example.com/status",
    routes=[
        Route(
            name="podcasts",
            owners=["maya@example.com", "*@podcasts.example.com"],
            channels=["json://hooks.example.com/okr"],
        ),
        Route(name="data-team", owners=["data-team"], channels=["json://hooks.example.com/data"]),
    ],
    default_route=Route(name="default", owners=[], channels=["json://hooks.example.com/all"]),
)


def note(
    kind: AlertKind = "off_track",
    transition: Transition = "firing",
    *,
    owner: str = "maya@example.com",
    delivery: Delivery = "sent",
    **fields: Any,
) -> Notification:
    fields.setdefault("status", {"off_track": "off_track", "stale": "stale"}.get(kind, "error"))
    status = fields.pop("status")
    return Notification(kind, transition, kr(status, **fields), owner, delivery)


def test_two_owners_of_one_route_get_one_message() -> None:
    notes = [
        note(kr_id=1, ref="pod/a", owner="maya@example.com"),
        note(kr_id=2, ref="pod/b", owner="lee@podcasts.example.com"),
    ]
    (message,) = group(notes, ROUTING)
    assert message.route.name == "podcasts"
    assert message.notifications == notes
    assert message.title == "OKR alerts: 2 off track"


def test_different_routes_get_a_message_each_in_file_order() -> None:
    notes = [
        note(kr_id=1, ref="a/x", owner="someone@else.example.com"),
        note("source_failing", kr_id=2, ref="b/y", owner="data-team"),
        note(
            kr_id=3, ref="c/z", owner="maya@example.com", status="on_track", transition="resolved"
        ),
    ]
    messages = group(notes, ROUTING)
    assert [(m.route.name, [n.kr.ref for n in m.notifications]) for m in messages] == [
        ("podcasts", ["c/z"]),
        ("data-team", ["b/y"]),
        ("default", ["a/x"]),
    ]
    assert [m.title for m in messages] == [
        "OKR alerts: 1 resolved",
        "OKR alerts: 1 source failing",
        "OKR alerts: 1 off track",
    ]


@pytest.mark.parametrize("delivery", ["silenced", "inhibited", "failed", "recorded", "dry_run"])
def test_only_sent_notifications_are_put_in_messages(delivery: Delivery) -> None:
    notes = [note(kr_id=1, ref="a/x"), note(kr_id=2, ref="a/y", delivery=delivery)]
    (message,) = group(notes, ROUTING)
    assert [n.kr.ref for n in message.notifications] == ["a/x"]
    assert group([notes[1]], ROUTING) == []


def test_no_file_means_everything_goes_to_the_channelless_default_route() -> None:
    (message,) = group([note(), note("stale", kr_id=2, ref="a/s")], RoutingConfig())
    assert message.route == Route(name="default", owners=[], channels=[])
    assert "open in the report" not in message.body


def test_title_counts_each_kind_and_the_resolved() -> None:
    notes = [
        note(kr_id=1, ref="a/1"),
        note(kr_id=2, ref="a/2", transition="repeat"),
        note("stale", kr_id=3, ref="a/3"),
        note(kr_id=4, ref="a/4", transition="resolved", status="on_track"),
        note("source_failing", kr_id=5, ref="a/5", transition="resolved", status="on_track"),
    ]
    (message,) = group(notes, ROUTING)
    assert message.title == "OKR alerts: 2 off track, 1 stale, 2 resolved"
    # new first, then reminders, then resolved
    assert [n.kr.ref for n in message.notifications] == ["a/1", "a/3", "a/2", "a/4", "a/5"]


def test_message_body_says_what_changed_and_where_the_kr_stands() -> None:
    (message,) = group(
        [
            note(
                kr_id=1,
                ref="podcast-discovery/first_time",
                title="First-time *listeners*",
                value=Decimal("310.0"),
                target=Decimal("1E+3"),
                unit="listeners",
                progress=0.3149,
                expected_progress=0.44,
                forecast_value=Decimal("720"),
                forecast_score=0.72,
                reason="31% of the way, pace is 44%",
            )
        ],
        ROUTING,
    )
    assert isinstance(message, Message)
    body = message.body
    assert "🔴 off track (firing)" in body
    assert "`podcast-discovery/first_time`" in body
    assert r"First-time \*listeners\*" in body  # Markdown in titles is shown, not applied
    assert "value 310 listeners, target 1000 listeners" in body
    assert "progress 31% vs pace 44%" in body
    assert "forecast 720 listeners at the end of the cycle (score 0.72)" in body
    assert "- status off track: 31% of the way, pace is 44%" in body
    assert "https://okr.example.com/status#podcast-discovery/first_time" in body
    assert "error" not in body


def test_missing_numbers_are_dashes_never_zero() -> None:
    (message,) = group(
        [
            note(
                "stale",
                value=None,
                target=None,
                progress=None,
                expected_progress=None,
                forecast_value=None,
                unit="%",
            )
        ],
        RoutingConfig(),
    )
    assert f"value {MISSING}, target {MISSING}" in message.body
    assert f"progress {MISSING} vs pace {MISSING}" in message.body
    assert "forecast" not in message.body
    assert " 0" not in message.body and "0%" not in message.body


def test_percent_unit_and_forecast_without_score() -> None:
    (message,) = group(
        [note(unit="%", value=Decimal("12.5"), target=Decimal(40), forecast_value=Decimal(30))],
        RoutingConfig(),
    )
    assert "value 12.5%, target 40%" in message.body
    assert "forecast 30% at the end of the cycle\n" in message.body


def test_source_failing_shows_the_error_to_the_connection_owner() -> None:
    (message,) = group(
        [note("source_failing", owner="data-team", error="HTTP 503 from warehouse.example.com")],
        ROUTING,
    )
    assert message.route.name == "data-team"
    assert "🟠 source failing (firing)" in message.body
    assert "error: HTTP 503 from warehouse.example.com" in message.body


def test_a_long_error_is_cut() -> None:
    (message,) = group([note("source_failing", error="x" * 5000)], RoutingConfig())
    assert "x" * 499 + "…" in message.body
    assert "x" * 501 not in message.body


@pytest.mark.parametrize(
    ("report_url", "expected"),
    [
        ("https://okr.example.com/status", "(https://okr.example.com/status#obj/kr1)"),
        ("https://okr.example.com/status#top", "(https://okr.example.com/status#top)"),
    ],
)
def test_report_link(report_url: str, expected: str) -> None:
    routing = RoutingConfig(report_url=report_url)
    (message,) = group([note()], routing)
    assert expected in message.body
    assert message.body.rstrip().endswith(f"[Open the OKR report]({report_url})")


@pytest.mark.parametrize(
    ("kind", "transition", "expected"),
    [
        ("off_track", "firing", "🔴 off track (firing)"),
        ("off_track", "repeat", "still off track (repeat)"),
        ("off_track", "resolved", "✅ resolved (was off track)"),
        ("stale", "firing", "🟣 stale (firing)"),
        ("stale", "resolved", "✅ resolved (was stale)"),
        ("source_failing", "firing", "🟠 source failing (firing)"),
        ("source_failing", "repeat", "source still failing (repeat)"),
    ],
)
def test_headlines(kind: AlertKind, transition: Transition, expected: str) -> None:
    assert headline(note(kind, transition)) == expected


def test_payload_is_json_and_keeps_precision() -> None:
    data = payload(
        note(
            value=Decimal("0.1000000000000000000001"),
            target=Decimal("2.50"),
            forecast_value=Decimal(3),
            forecast_score=0.5,
            progress=float("nan"),
        )
    )
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data == {
        "kind": "off_track",
        "transition": "firing",
        "ref": "obj/kr1",
        "title": "KR 1",
        "owner": "maya@example.com",
        "status": "off_track",
        "value": "0.1000000000000000000001",
        "target": "2.5",
        "unit": "listeners",
        "progress": None,
        "expected_progress": 0.44,
        "forecast_value": "3",
        "forecast_score": 0.5,
        "reason": "status off_track",
        "error": None,
    }


def test_payload_of_a_missing_value_is_null() -> None:
    data = payload(note("source_failing", value=None, target=None, error="HTTP 503"))
    assert (data["value"], data["target"], data["error"]) == (None, None, "HTTP 503")
