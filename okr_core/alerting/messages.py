"""Grouping notifications into one Markdown message per route per run, and their payloads.

Only notifications with delivery ``sent`` are put into messages; silenced and inhibited
ones are recorded by the caller and never sent. Within a message, new alerts come first,
then the reminders, then the resolved ones, each by KR ref. A missing number is written
"—", never 0. Channel URLs are never rendered here (they may hold secrets).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from okr_pipeline.okr_core.alerting.model import AlertKind, Notification, Transition

if TYPE_CHECKING:  # the routing module brings the YAML readers: not for number formatting
    from okr_pipeline.okr_core.alerting.routing import Route, RoutingConfig

__all__ = [
    "MISSING",
    "Message",
    "decimal_text",
    "group",
    "headline",
    "kr_page_url",
    "payload",
    "render",
    "report_link",
]

MISSING = "—"
PLAIN_DIGITS = 30
MAX_ERROR_CHARS = 500

_KIND_WORDS: dict[AlertKind, str] = {
    "off_track": "off track",
    "stale": "stale",
    "source_failing": "source failing",
}
_HEADLINES: dict[tuple[AlertKind, Transition], str] = {
    ("off_track", "firing"): "🔴 off track (firing)",
    ("off_track", "repeat"): "still off track (repeat)",
    ("stale", "firing"): "🟣 stale (firing)",
    ("stale", "repeat"): "still stale (repeat)",
    ("source_failing", "firing"): "🟠 source failing (firing)",
    ("source_failing", "repeat"): "source still failing (repeat)",
}
_TRANSITION_ORDER: dict[Transition, int] = {"firing": 0, "repeat": 1, "resolved": 2}
_MARKDOWN = re.compile(r"([\\`*_\[\]<>])")


@dataclass(frozen=True)
class Message:
    """One message to send: everything for one route in one run.

    Attributes:
        route: Where it goes.
        title: One line, e.g. "OKR alerts: 2 off track, 1 resolved".
        body: Markdown, one section per notification.
        notifications: What it tells, in the order of the body.
    """

    route: Route
    title: str
    body: str
    notifications: list[Notification]


def headline(notification: Notification) -> str:
    """What changed, e.g. "🔴 off track (firing)" or "✅ resolved (was off track)"."""
    if notification.transition == "resolved":
        return f"✅ resolved (was {_KIND_WORDS[notification.kind]})"
    return _HEADLINES[(notification.kind, notification.transition)]


def decimal_text(value: Decimal) -> str:
    """A finite decimal as exact text, without an exponent while it has few digits.

    Past ``PLAIN_DIGITS`` digits before or after the point it is written in scientific
    notation, still exact: written out, ``1e999999999`` would be a billion digits (and
    normalising it raises ``decimal.Overflow``).
    """
    if value.is_zero():
        return "0"
    if abs(value.adjusted()) > PLAIN_DIGITS:
        return f"{value:e}"
    text = format(value, "f")
    # Trailing zeros after the point say nothing here; stripped as text, since
    # normalize() would round to the context's 28 digits.
    return text.rstrip("0").rstrip(".") if "." in text else text


def _number(value: Decimal | None) -> str | None:
    if value is None or not value.is_finite():
        return None
    return decimal_text(value)


def _display(value: Decimal | None) -> str | None:
    # People read 4 significant digits; the payload keeps the exact value.
    if value is None or not value.is_finite():
        return None
    if value == value.to_integral_value():
        return _number(value)
    return _number(Decimal(f"{value:.4g}"))


def _with_unit(value: Decimal | None, unit: str) -> str:
    text = _display(value)
    if text is None:
        return MISSING
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def _percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{round(value * 100)}%"


def _escape(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", " ".join(text.split()))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def report_link(report_url: str | None, ref: str) -> str | None:
    """The report's URL for KR ``ref``: ``report_url#ref``, or the URL as is if it has a '#'."""
    if not report_url:
        return None
    return report_url if "#" in report_url else f"{report_url}#{ref}"


def kr_page_url(dashboard_url: str, ref: str) -> str:
    """The dashboard's page of KR ``ref``: ``<dashboard_url>/kr/<objective>/<kr>``.

    The one rule for it: alert messages and the run's Prefect artifacts link there.
    """
    return f"{dashboard_url.rstrip('/')}/kr/{quote(ref, safe='/')}"


@dataclass(frozen=True)
class _Links:
    """Where a message's links go: the dashboard (settings) wins over the report URL."""

    dashboard_url: str | None
    report_url: str | None

    def kr(self, ref: str) -> tuple[str, str] | None:
        if self.dashboard_url:
            return "open in the dashboard", kr_page_url(self.dashboard_url, ref)
        link = report_link(self.report_url, ref)
        return None if link is None else ("open in the report", link)

    def closing(self) -> str | None:
        if self.dashboard_url:
            return f"[Open the OKR dashboard]({self.dashboard_url})"
        if self.report_url:
            return f"[Open the OKR report]({self.report_url})"
        return None


def _section(notification: Notification, links: _Links) -> str:
    kr = notification.kr
    lines = [f"### {headline(notification)}: `{kr.ref}` {_escape(kr.title)}", ""]
    lines.append(
        f"- value {_with_unit(kr.value, kr.unit)}, target {_with_unit(kr.target, kr.unit)}"
    )
    lines.append(f"- progress {_percent(kr.progress)} vs pace {_percent(kr.expected_progress)}")
    if kr.forecast_value is not None:
        score = _finite(kr.forecast_score)
        score_text = f" (score {score:.2f})" if score is not None else ""
        lines.append(
            f"- forecast {_with_unit(kr.forecast_value, kr.unit)} at the end of the cycle"
            f"{score_text}"
        )
    status = kr.status.replace("_", " ")
    lines.append(f"- status {status}" + (f": {_escape(kr.reason)}" if kr.reason else ""))
    if notification.kind == "source_failing" and kr.error:
        error = " ".join(kr.error.split())
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        lines.append(f"- error: {_escape(error)}")
    link = links.kr(kr.ref)
    if link is not None:
        lines.append(f"- [{link[0]}]({link[1]})")
    return "\n".join(lines)


def _title(notifications: Sequence[Notification]) -> str:
    counts: dict[str, int] = {}
    for kind, word in _KIND_WORDS.items():
        count = sum(1 for n in notifications if n.kind == kind and n.transition != "resolved")
        if count:
            counts[word] = count
    resolved = sum(1 for n in notifications if n.transition == "resolved")
    if resolved:
        counts["resolved"] = resolved
    return "OKR alerts: " + ", ".join(f"{count} {word}" for word, count in counts.items())


def render(
    route: Route,
    notifications: Sequence[Notification],
    report_url: str | None,
    dashboard_url: str | None = None,
) -> Message:
    """One message for ``route`` telling ``notifications`` (ordered: new, repeat, resolved).

    Args:
        route: Where the message goes.
        notifications: What to tell; at least one.
        report_url: The OKR report (``alerts.yaml``), linked per KR as ``#<ref>``, or None.
        dashboard_url: The dashboard (``Settings.report_url``), linked per KR as
            ``/kr/<ref>``; it wins over ``report_url``.

    Returns:
        The message.
    """
    ordered = sorted(
        notifications, key=lambda n: (_TRANSITION_ORDER[n.transition], n.kr.ref, n.kind)
    )
    links = _Links(dashboard_url=dashboard_url, report_url=report_url)
    sections = [_section(n, links) for n in ordered]
    closing = links.closing()
    if closing is not None:
        sections.append(closing)
    return Message(
        route=route,
        title=_title(ordered),
        body="\n\n".join(sections) + "\n",
        notifications=ordered,
    )


def group(
    notifications: Sequence[Notification],
    routing: RoutingConfig,
    dashboard_url: str | None = None,
) -> list[Message]:
    """One message per route with something to send, in the order of the routing file.

    Args:
        notifications: This run's notifications; only those with delivery ``sent`` count.
        routing: The routes (and the report URL).
        dashboard_url: The dashboard (``Settings.report_url``): each KR links to its page.

    Returns:
        The messages, the routes in file order and the default route last.
    """
    by_route: dict[str, list[Notification]] = {}
    routes: dict[str, Route] = {}
    for notification in notifications:
        if notification.delivery != "sent":
            continue
        route = routing.route_for(notification.owner)
        routes[route.name] = route
        by_route.setdefault(route.name, []).append(notification)
    order = [route.name for route in [*routing.routes, routing.default_route]]
    return [
        render(routes[name], by_route[name], routing.report_url, dashboard_url)
        for name in order
        if name in by_route
    ]


def payload(notification: Notification) -> dict[str, Any]:
    """The JSON-able facts of a notification, for alert records and Prefect events.

    Numbers that are Decimals (value, target, forecast value) are given as strings so that
    no precision is lost; a missing one is None.
    """
    kr = notification.kr
    return {
        "kind": notification.kind,
        "transition": notification.transition,
        "ref": kr.ref,
        "title": kr.title,
        "owner": notification.owner,
        "status": kr.status,
        "value": _number(kr.value),
        "target": _number(kr.target),
        "unit": kr.unit,
        "progress": _finite(kr.progress),
        "expected_progress": _finite(kr.expected_progress),
        "forecast_value": _number(kr.forecast_value),
        "forecast_score": _finite(kr.forecast_score),
        "reason": kr.reason,
        "error": kr.error,
    }
