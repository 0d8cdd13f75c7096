"""Send grouped messages to their routes' channels, and record every alert.

One message goes to each channel of its route once (the grouping is what the reader
sees); each notification in it gets one record per channel, with that channel's outcome.
A channel that fails is retried under the one retry policy (``okr_core.retry``: jittered
exponential backoff) and recorded ``failed`` with a redacted error; the other channels and
routes are still sent. Nothing here raises for a channel.
"""

from __future__ import annotations

import logging
import random as _random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from okr_pipeline.notify.channels import (
    Channel,
    ChannelConfigError,
    ChannelError,
    ChannelSendError,
    check,
    deliver,
    describe_channel,
    resolve_channel,
)
from okr_pipeline.okr_core.alerting.messages import Message, payload
from okr_pipeline.okr_core.alerting.model import AlertRecord, Delivery, Notification
from okr_pipeline.okr_core.alerting.routing import RoutingConfig
from okr_pipeline.okr_core.retry import RetryPolicy

__all__ = ["NOT_ROUTED", "UNROUTED_DELIVERY", "records_for_held", "send_messages"]

logger = logging.getLogger(__name__)

HELD: frozenset[Delivery] = frozenset({"silenced", "inhibited"})

#: The delivery of an alert whose route has no channel (no ``alerts.yaml`` at all, or a
#: route written without channels): kept for ``okr alerts``, sent nowhere, not retried, and
#: counted as delivered (there is nowhere to try again). It is not a failure, so it has no
#: error.
UNROUTED_DELIVERY: Delivery = "recorded"

#: The start of the error a dry run shows for an alert that no channel routes (stores
#: before migration 0005 kept it with such alerts, as ``failed``).
NOT_ROUTED = "recorded, not sent"


def send_messages(
    messages: Sequence[Message],
    secrets: Mapping[str, SecretStr],
    *,
    run_id: int | None,
    now: datetime,
    attempts: int = 3,
    backoff_seconds: float = 0.5,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    random: Callable[[], float] = _random.random,
) -> list[AlertRecord]:
    """Send each message to every channel of its route and record each notification.

    Args:
        messages: Grouped messages, one per route (``okr_core.alerting.messages.group``);
            their notifications are the ones to send (held ones are recorded by
            ``records_for_held``).
        secrets: The settings' secrets, for ``${secret:NAME}`` in channel URLs.
        run_id: The run the records belong to (None in a dry run).
        now: The records' time.
        attempts: Tries per channel before it is recorded failed (at least 1).
        backoff_seconds: Longest wait before the second try; doubled before each further
            one (at most 30 s); each wait is drawn between half of that and all of it.
        dry_run: Send nothing; record ``dry_run`` (with the error a channel would
            certainly fail with: unknown secret, not a valid URL).
        sleep: Waits between tries (tests pass a no-op).
        random: Numbers in [0, 1) for the jitter of the waits (tests may fix them).

    Returns:
        One record per (notification, channel); per notification a single record when the
        route has no channel (:data:`UNROUTED_DELIVERY`, without error; in a dry run
        ``dry_run``, with an error starting :data:`NOT_ROUTED`).
    """
    policy = RetryPolicy(attempts=max(1, attempts), first_delay=backoff_seconds)
    records: list[AlertRecord] = []
    for message in messages:
        route = message.route
        if not route.channels:
            if dry_run:
                # What the dry run reports: why this one would not go out.
                missing = f"{NOT_ROUTED}: route '{route.name}' has no channel"
                records += _records(message, "", "dry_run", missing, run_id=run_id, now=now)
            else:
                records += _records(message, "", UNROUTED_DELIVERY, None, run_id=run_id, now=now)
            continue
        for template in route.channels:
            name, error = _send_one(message, template, secrets, dry_run, policy, sleep, random)
            delivery: Delivery = "dry_run" if dry_run else "failed" if error else "sent"
            if error and not dry_run:
                logger.warning("Alert for route %r not sent: %s", route.name, error)
            records += _records(message, name, delivery, error, run_id=run_id, now=now)
    return records


def records_for_held(
    notifications: Iterable[Notification],
    routing: RoutingConfig,
    *,
    run_id: int | None,
    now: datetime,
) -> list[AlertRecord]:
    """Records of the notifications held back (silenced or inhibited): kept, not sent.

    Args:
        notifications: This run's notifications; those to send are skipped (their records
            come from ``send_messages``).
        routing: The routes, to name each notification's route.
        run_id: The run.
        now: The records' time.

    Returns:
        One record per held notification, with ``channel`` empty.
    """
    return [
        _record(n, routing.route_for(n.owner).name, "", n.delivery, None, {}, run_id, now)
        for n in notifications
        if n.delivery in HELD
    ]


def _send_one(
    message: Message,
    template: str,
    secrets: Mapping[str, SecretStr],
    dry_run: bool,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    random: Callable[[], float],
) -> tuple[str, str | None]:
    """Send one message to one channel; its redacted name and the error, if any."""
    try:
        channel = resolve_channel(template, secrets)
    except ChannelError as exc:
        return describe_channel(template), str(exc)
    if dry_run:
        try:
            check(channel)
        except ChannelError as exc:
            return channel.name, str(exc)
        return channel.name, None
    return channel.name, _deliver_with_retries(channel, message, policy, sleep, random)


def _deliver_with_retries(
    channel: Channel,
    message: Message,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    random: Callable[[], float],
) -> str | None:
    def attempt() -> None:
        try:
            deliver(channel, message.title, message.body)
        except ChannelError:
            raise
        except Exception as exc:
            # A sender bug must not stop the others: it counts as a failed try.
            error = channel.redact(f"{channel.name}: {type(exc).__name__}: {exc}")
            raise ChannelSendError(error) from exc

    def tell(failure: ChannelSendError, tried: int, wait: float) -> None:
        logger.info("%s (attempt %d of %d); trying again", failure, tried, policy.attempts)

    try:
        policy.call(attempt, retry_on=ChannelSendError, on_retry=tell, sleep=sleep, random=random)
    except ChannelConfigError as exc:
        return str(exc)  # would fail the same way every time: not retried
    except ChannelSendError as exc:
        tries = policy.attempts
        return f"{exc} (after {tries} attempts)" if tries > 1 else str(exc)
    return None


def _records(
    message: Message,
    channel: str,
    delivery: Delivery,
    error: str | None,
    *,
    run_id: int | None,
    now: datetime,
) -> list[AlertRecord]:
    # payload() has the KR's own "title": the message goes under its own key.
    extra = {"message": {"title": message.title, "body": message.body}}
    return [
        _record(n, message.route.name, channel, delivery, error, extra, run_id, now)
        for n in message.notifications
    ]


def _record(
    notification: Notification,
    route: str,
    channel: str,
    delivery: Delivery,
    error: str | None,
    extra: Mapping[str, Any],
    run_id: int | None,
    now: datetime,
) -> AlertRecord:
    return AlertRecord(
        kr_id=notification.kr.kr_id,
        kind=notification.kind,
        transition=notification.transition,
        route=route,
        channel=channel,
        delivery=delivery,
        payload={**payload(notification), **extra},
        created_at=now,
        error=error,
        run_id=run_id,
    )
