"""Prefect events for alert transitions, so Prefect automations can react to them too.

One event per ``firing`` or ``resolved`` transition; a ``repeat`` is the same state again
and emits nothing. Silenced and inhibited transitions still emit: the KR's state did
change, only the message was held back (the payload says which, under ``delivery``).

==================  =====================================================
transition          event
==================  =====================================================
off_track firing    ``okr.kr.off-track``
off_track resolved  ``okr.kr.off-track.resolved``
stale ...           ``okr.kr.stale``, ``okr.kr.stale.resolved``
source_failing ...  ``okr.kr.source-failing``, ``okr.kr.source-failing.resolved``
==================  =====================================================

The resource is ``okr.kr.<objective>.<kr>`` with the labels ``objective``, ``kr`` and
``owner`` (who is told); the payload is the alert record's (status, value, target, unit,
reason, error, ...) with the delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from okr_pipeline.okr_core.alerting.messages import payload
from okr_pipeline.okr_core.alerting.model import Notification
from okr_pipeline.okr_core.words import plural

__all__ = ["emit_transition_events", "event_name", "event_payload", "event_resource"]

logger = logging.getLogger(__name__)


def event_name(notification: Notification) -> str | None:
    """The event a notification's transition emits, or None for a repeat.

    Args:
        notification: One transition of one alert.

    Returns:
        E.g. ``okr.kr.off-track`` or ``okr.kr.source-failing.resolved``; None for ``repeat``.
    """
    if notification.transition == "repeat":
        return None
    name = "okr.kr." + notification.kind.replace("_", "-")
    return f"{name}.resolved" if notification.transition == "resolved" else name


def event_resource(notification: Notification) -> dict[str, str]:
    """The Prefect resource of a notification's KR, with its labels.

    Args:
        notification: One transition of one alert.

    Returns:
        ``prefect.resource.id`` ``okr.kr.<objective>.<kr>``, ``prefect.resource.name``,
        and the labels ``objective``, ``kr``, ``owner``.
    """
    kr = notification.kr
    objective, _, kr_key = kr.ref.partition("/")
    objective = kr.objective_key or objective
    return {
        "prefect.resource.id": f"okr.kr.{objective}.{kr_key}",
        "prefect.resource.name": kr.title or kr.ref,
        "objective": objective,
        "kr": kr_key,
        "owner": notification.owner,
    }


def event_payload(notification: Notification) -> dict[str, Any]:
    """What changed: the alert record's payload and the notification's delivery.

    Args:
        notification: One transition of one alert.

    Returns:
        ``messages.payload`` (kind, transition, ref, status, value, target, unit, progress,
        forecast, reason, error; numbers as strings) and ``delivery`` (sent, silenced,
        inhibited).
    """
    return {**payload(notification), "delivery": notification.delivery}


def emit_transition_events(notifications: Sequence[Notification]) -> None:
    """Emit one Prefect event per firing or resolved transition; never raises.

    Without a Prefect API (or events client) the events are dropped with a warning: the
    alerts themselves are sent and recorded either way.

    Args:
        notifications: This run's notifications, held ones included.
    """
    try:
        from prefect.events import emit_event
    except Exception as exc:  # noqa: BLE001 - a broken Prefect install must not stop a run
        logger.warning("Alert events not emitted: cannot import Prefect events (%r)", exc)
        return
    dropped = 0
    for notification in notifications:
        name = event_name(notification)
        if name is None:
            continue
        try:
            event = emit_event(
                event=name,
                resource=event_resource(notification),
                payload=event_payload(notification),
            )
        except Exception as exc:  # noqa: BLE001 - events are a side channel
            logger.warning("Alert event %s for %s not emitted: %r", name, notification.kr.ref, exc)
            continue
        if event is None:
            dropped += 1
    if dropped:
        logger.warning(
            "%s not emitted: no Prefect API or events client is available "
            "(set PREFECT_API_URL to emit them)",
            plural(dropped, "alert event"),
        )
