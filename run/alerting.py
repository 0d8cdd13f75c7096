"""The alert step of a run: evaluations → alert states → grouped messages → channels.

It runs after the run's measurements and evaluations are committed, so that nothing a
channel does (fail, hang up to its timeout) can lose them; and it never raises for a
channel that fails: the failure is recorded with the alert.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from okr_pipeline.notify import records_for_held, send_messages
from okr_pipeline.notify.send import UNROUTED_DELIVERY
from okr_pipeline.okr_core.alerting.engine import settle, step
from okr_pipeline.okr_core.alerting.messages import group
from okr_pipeline.okr_core.alerting.model import (
    AlertPolicy,
    AlertPolicyOverride,
    AlertRecord,
    KrAlertInput,
    Notification,
)
from okr_pipeline.okr_core.alerting.routing import RoutingConfig
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.fetch import FetchResult

#: Where the README explains routing, for the run's one-line hint.
ROUTING_DOCS = "README: Alerts, Routing"


@dataclass
class AlertSummary:
    """What the alert step did in one run.

    Attributes:
        deliveries: How many alert records got each delivery; alerts that no channel
            routes are ``recorded`` (kept for ``okr alerts``, sent nowhere).
        transitions: How many of each ``kind transition`` the run had.
        failed: ``channel: error`` of each channel that failed to take an alert.
        hint: Said once per run when alerts were only recorded: how to route them.
    """

    deliveries: dict[str, int] = field(default_factory=dict)
    transitions: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    hint: str | None = None

    def describe(self) -> str:
        """One line for the run's summary, e.g. "2 sent, 1 silenced"."""
        if not self.deliveries:
            return "no alerts"
        return ", ".join(f"{n} {what}" for what, n in sorted(self.deliveries.items()))


def is_unrouted(record: AlertRecord) -> bool:
    """True for the record of an alert whose route has no channel: recorded, not failed."""
    return record.delivery == UNROUTED_DELIVERY


def routing_hint(records: Sequence[AlertRecord], settings: Settings) -> str | None:
    """How to send the alerts this run only recorded, in one line; None when there are none."""
    routes = sorted({r.route for r in records if is_unrouted(r)})
    if not routes:
        return None
    path = settings.resolved_alerts_path()
    if not path.exists():
        return (
            f"no {path.name}: alerts are kept ('okr alerts' lists them), not sent; write "
            f"{path.name} to send them ({ROUTING_DOCS})"
        )
    names = ", ".join(f"'{name}'" for name in routes)
    return (
        f"{'route' if len(routes) == 1 else 'routes'} {names} "
        f"{'has' if len(routes) == 1 else 'have'} no channel in {path.name}: "
        "their alerts are kept, not sent "
        f"({ROUTING_DOCS})"
    )


def source_connection(source: Mapping[str, Any]) -> str | None:
    """The connection a source uses (or the host of its URL), for source alerts."""
    connection = source.get("connection")
    if isinstance(connection, str):
        return connection
    url = source.get("url")
    if isinstance(url, str):
        return urlsplit(url).hostname
    return None


def policy_of(kr: StoredKeyResult, defaults: AlertPolicy) -> AlertPolicy:
    """The KR's alert policy: the routing file's defaults with the KR's ``alerts:`` applied."""
    if not kr.alert_policy:
        return defaults
    return AlertPolicyOverride.model_validate(kr.alert_policy).apply(defaults)


def alert_inputs(
    krs: Sequence[StoredKeyResult],
    evaluations: Sequence[EvaluationRecord],
    results: Sequence[FetchResult],
    settings: Settings,
    routing: RoutingConfig,
) -> list[KrAlertInput]:
    """What the alerter needs of each KR evaluated in this run."""
    by_id = {kr.kr_id: kr for kr in krs}
    errors = {r.kr_id: r.error_line() for r in results if not r.ok}
    inputs = []
    for ev in evaluations:
        kr = by_id[ev.kr_id]
        connection = source_connection(kr.source)
        conn_settings = settings.connections.get(connection or "")
        inputs.append(
            KrAlertInput(
                kr_id=kr.kr_id,
                ref=kr.ref,
                objective_key=kr.objective_key,
                title=kr.title,
                owner=kr.owner,
                unit=kr.unit,
                status=ev.status,
                reason=ev.reason,
                value=ev.value,
                target=kr.target_value,
                progress=ev.progress,
                expected_progress=ev.expected_progress,
                forecast_value=ev.forecast_value,
                forecast_score=ev.forecast_score,
                error=errors.get(kr.kr_id),
                connection=connection,
                connection_owner=conn_settings.owner if conn_settings else None,
                policy=policy_of(kr, routing.defaults),
            )
        )
    return inputs


def undelivered(
    notifications: Sequence[Notification],
    records: Sequence[AlertRecord],
    routing: RoutingConfig,
) -> list[Notification]:
    """The notifications to send that no channel of their route accepted.

    A notification counts as delivered once one channel of its route took it (a channel
    that failed beside it is recorded ``failed``, not retried). Held ones (silenced,
    inhibited) are not sent, so never undelivered; nor is one whose route has no channel
    at all: there is nowhere to try again, and its record says ``recorded``.
    """
    sent = {(r.kr_id, r.kind, r.transition) for r in records if r.delivery == "sent"}
    return [
        n
        for n in notifications
        if n.delivery == "sent"
        and routing.route_for(n.owner).channels
        and (n.kr.kr_id, n.kind, n.transition) not in sent
    ]


def run_alerts(
    krs: Sequence[StoredKeyResult],
    evaluations: Sequence[EvaluationRecord],
    results: Sequence[FetchResult],
    *,
    store: Store,
    settings: Settings,
    routing: RoutingConfig,
    run_id: int | None,
    now: datetime,
    dry_run: bool,
    emit_events: Callable[[Sequence[Notification]], None] | None = None,
) -> AlertSummary:
    """Move the alert states of the evaluated KRs, send what is due, record everything.

    Failed sends are retried on the next run (see ``okr_core.alerting.engine.settle``).

    Args:
        krs: The KRs measured in this run.
        evaluations: The evaluations to alert on: any subset of the KRs' evaluations in
            this run, possibly none. KRs without one here keep their alert states untouched
            (no counting, no repeat, no resolved message).
        results: What their sources answered (for error texts).
        store: Where alert states, silences and records live.
        settings: Connections (owners) and secrets (channel URLs).
        routing: The alert routing file's contents (see :func:`load_alert_routing`).
        run_id: The run (None in a dry run).
        now: The time the run evaluates (``--as-of`` or now).
        dry_run: Compute and report, but send and store nothing.
        emit_events: Called with the transitions sent (the Prefect flow emits a Prefect
            event for each: :func:`okr_pipeline.notify.events.emit_transition_events`).
    """
    inputs = alert_inputs(krs, evaluations, results, settings, routing)
    if not inputs:
        return AlertSummary()  # nothing evaluated (a rerun of an as-of already seen)
    # Only the evaluated KRs move: a KR measured but not evaluated in this run (its as-of
    # is not newer than its last evaluation) keeps its states exactly as they are.
    states = store.alert_states([kr.kr_id for kr in inputs])
    outcome = step(states, inputs, now=now, silences=store.silences(now))
    records: list[AlertRecord] = records_for_held(
        outcome.notifications, routing, run_id=run_id, now=now
    )
    records += send_messages(
        group(outcome.notifications, routing, dashboard_url=settings.report_url),
        settings.secrets,
        run_id=run_id,
        now=now,
        dry_run=dry_run,
    )
    if not dry_run:
        lost = undelivered(outcome.notifications, records, routing)
        outcome = settle(states, outcome, lost)
        store.apply_alert_step(outcome.states, outcome.cleared, records)
        # An undone transition is emitted when it is sent, not once per attempt.
        if emit_events is not None:
            emit_events([n for n in outcome.notifications if n not in lost])
    return AlertSummary(
        deliveries=dict(Counter(r.delivery for r in records)),
        transitions=dict(Counter(f"{n.kind} {n.transition}" for n in outcome.notifications)),
        failed=sorted({_failure(r) for r in records if r.error}),
        hint=routing_hint(records, settings),
    )


def _failure(record: AlertRecord) -> str:
    # A channel's error names the channel already ("json://host: ..."): not twice.
    where = record.channel or record.route
    error = record.error or ""
    return error if error.startswith(where) else f"{where}: {error}"
