"""The runs page and the alerts page: what the pipeline did, and whom it told.

Runs come with their failures (one query for the page of runs) and a link to the Prefect
flow run when the run has one and the Prefect UI's address is known.
"""

from __future__ import annotations

from datetime import UTC, datetime

from okr_pipeline.okr_core.alerting.model import Silence
from okr_pipeline.okr_core.redaction import redact_text
from okr_pipeline.okr_store.records import AlertRow as StoredAlert
from okr_pipeline.okr_store.store import Store
from okr_pipeline.web import queries
from okr_pipeline.web.model import AlertRow, AlertsPage, RunFailure, RunRow, RunsPage, SilenceRow

__all__ = ["RUNS_SHOWN", "alert_row", "alerts_page", "flow_run_url", "runs_page", "silence_row"]

RUNS_SHOWN = 50
ALERTS_SHOWN = 100


def flow_run_url(prefect_ui_url: str | None, flow_run_id: str | None) -> str | None:
    """The Prefect UI page of a flow run, or None when either is unknown.

    Args:
        prefect_ui_url: The Prefect UI's address (``http://127.0.0.1:4200``; a trailing
            ``/api`` of an API URL is dropped).
        flow_run_id: The run's flow run id.
    """
    if not prefect_ui_url or not flow_run_id:
        return None
    base = prefect_ui_url.rstrip("/").removesuffix("/api").rstrip("/")
    return f"{base}/runs/flow-run/{flow_run_id}"


def alert_row(alert: StoredAlert) -> AlertRow:
    """The dashboard's row of a recorded alert (its channel is stored redacted already)."""
    return AlertRow(
        id=alert.id,
        created_at=alert.created_at,
        run_id=alert.run_id,
        ref=alert.ref,
        kind=alert.kind,
        transition=alert.transition,
        route=alert.route,
        channel=redact_text(alert.channel),
        delivery=alert.delivery,
        error=None if alert.error is None else redact_text(alert.error),
    )


def silence_row(silence: Silence, now: datetime) -> SilenceRow:
    """The dashboard's row of a silence, active or not at ``now``."""
    return SilenceRow(
        id=silence.id,
        target=silence.target,
        until=silence.until,
        reason=silence.reason,
        created_at=silence.created_at,
        active=silence.until > now,
    )


def runs_page(
    store: Store, *, limit: int = RUNS_SHOWN, prefect_ui_url: str | None = None
) -> RunsPage:
    """The latest runs, newest first, with their failures.

    Args:
        store: The store to read.
        limit: How many runs.
        prefect_ui_url: The Prefect UI's address, to link flow runs; None: no links.
    """
    runs = store.runs(limit)
    failures = queries.run_failures(store, [run.id for run in runs])
    rows = []
    for run in runs:
        duration = (
            None
            if run.finished_at is None
            else max(0.0, (run.finished_at - run.started_at).total_seconds())
        )
        rows.append(
            RunRow(
                id=run.id,
                trigger=run.trigger,
                as_of=run.as_of,
                started_at=run.started_at,
                finished_at=run.finished_at,
                duration_seconds=duration,
                status=run.status,
                total=run.total,
                measured=run.ok,
                no_data=run.no_data,
                errors=run.error,
                failures=[
                    RunFailure(ref=ref, outcome=outcome, message=redact_text(message))
                    for ref, outcome, message in failures.get(run.id, [])
                ],
                flow_run_id=run.flow_run_id,
                flow_run_url=flow_run_url(prefect_ui_url, run.flow_run_id),
            )
        )
    return RunsPage(runs=rows)


def alerts_page(
    store: Store, *, limit: int = ALERTS_SHOWN, now: datetime | None = None
) -> AlertsPage:
    """Recent alerts, newest first, and every silence not removed (expired ones marked)."""
    now = now or datetime.now(UTC)
    return AlertsPage(
        alerts=[alert_row(a) for a in store.recent_alerts(limit=limit)],
        silences=[silence_row(s, now) for s in store.silences(now, include_expired=True)],
    )
