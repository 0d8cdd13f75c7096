"""One KR's page: where it stands, its chart, history, status over time, alerts, definition.

A handful of queries for one KR (its definition, measurements and check-ins, evaluations,
alert states, alerts, silences, notes), none over the other KRs. Its current row is built
from its own history with the same rules as the overview's, so the two always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from okr_pipeline.okr_core.alerting.model import AlertState, Silence
from okr_pipeline.okr_core.redaction import mask_url, redact_text, redact_value
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_core.words import suggest
from okr_pipeline.okr_store.records import AlertRow as StoredAlert
from okr_pipeline.okr_store.records import NoteRow as StoredNote
from okr_pipeline.okr_store.records import StatusRow, StoredMeasurement
from okr_pipeline.okr_store.store import Store
from okr_pipeline.web import queries
from okr_pipeline.web.activity import alert_row, silence_row
from okr_pipeline.web.chart import chart_data
from okr_pipeline.web.model import (
    AlertStateRow,
    Definition,
    EvaluationRow,
    HistoryRow,
    KrDetail,
    NoteRow,
)
from okr_pipeline.web.overview import DEFAULT_STALE_AFTER_PERIODS, exact, kr_row
from okr_pipeline.web.standing import judged

__all__ = [
    "ALERTS_SHOWN",
    "HISTORY_SHOWN",
    "KrRecords",
    "UnknownKrError",
    "assemble",
    "definition",
    "kr_detail",
]

HISTORY_SHOWN = 1000
ALERTS_SHOWN = 50


class UnknownKrError(LookupError):
    """No KR answers to the name (or several do); the message says which exist."""


def resolve(store: Store, ref: str, cycle: str | None = None) -> queries.KrDefinitionRow:
    """The one active KR named ``ref`` (``objective/kr`` or a unique KR id).

    The same ``objective/kr`` in several cycles is the newest cycle's unless ``cycle`` is
    given.

    Raises:
        UnknownKrError: No such KR (with the closest names), or a KR id in several objectives.
    """
    matches = queries.find_key_result(store, ref, cycle)
    if "/" not in ref and len({m.ref for m in matches}) > 1:
        options = ", ".join(sorted({m.ref for m in matches}))
        raise UnknownKrError(f"KR id '{ref}' is in several objectives; name one of: {options}")
    if matches:
        return matches[0]
    where = f" in cycle '{cycle}'" if cycle else ""
    hint = suggest(ref, queries.kr_refs(store))
    raise UnknownKrError(f"No key result named '{ref}'{where}.{hint} The overview lists them.")


def definition(kr: queries.KrDefinitionRow, settings: Settings | None) -> Definition:
    """The KR's source as shown: every secret masked, the connection by name."""
    source: Mapping[str, Any] = kr.source
    connection = source.get("connection")
    name = connection if isinstance(connection, str) else None
    url = None
    if settings is not None and name is not None and name in settings.connections:
        url = mask_url(settings.connections[name].url.get_secret_value())
    query = source.get("query")
    called = source.get("url") or source.get("path")
    return Definition(
        source_type=kr.source_type,
        connection=name,
        connection_url=url,
        query=redact_text(query) if isinstance(query, str) else None,
        url=redact_text(called) if isinstance(called, str) else None,
        source=redact_value(dict(source)),
        schedule=kr.schedule,
    )


def _status_row(
    kr: queries.KrDefinitionRow,
    evaluation: Any | None,
    latest: StoredMeasurement | None,
    good: StoredMeasurement | None,
) -> StatusRow:
    return StatusRow(
        kr_id=kr.kr_id,
        cycle=kr.cycle,
        objective_key=kr.objective_key,
        objective_title=kr.objective_title,
        owner=kr.owner,
        objective_type=kr.objective_type,
        parent_key=kr.parent_key,
        kr_key=kr.kr_key,
        kr_title=kr.title,
        unit=kr.unit,
        kind=kr.kind,
        weight=kr.weight,
        schedule=kr.schedule,
        baseline=kr.baseline,
        target=kr.target,
        target_value=kr.target_value,
        floor=kr.floor,
        value=None if evaluation is None else evaluation.value,
        progress=None if evaluation is None else evaluation.progress,
        score=None if evaluation is None else evaluation.score,
        expected_progress=None if evaluation is None else evaluation.expected_progress,
        forecast_value=None if evaluation is None else evaluation.forecast_value,
        forecast_score=None if evaluation is None else evaluation.forecast_score,
        forecast_low=None if evaluation is None else evaluation.forecast_low,
        forecast_high=None if evaluation is None else evaluation.forecast_high,
        status=None if evaluation is None else evaluation.status,
        reason="" if evaluation is None else (evaluation.reason or ""),
        evaluated_at=None if evaluation is None else evaluation.evaluated_at,
        measured_at=None if latest is None else latest.measured_at,
        outcome=None if latest is None else latest.outcome,
        error_message=None if latest is None else latest.error_message,
        measured_as_of=None if latest is None else latest.as_of,
        last_good_value=None if good is None else good.value,
        last_good_at=None if good is None else good.measured_at,
        last_good_as_of=None if good is None else good.as_of,
    )


def _history_row(row: StoredMeasurement) -> HistoryRow:
    return HistoryRow(
        as_of=row.as_of,
        measured_at=row.measured_at,
        run_id=row.run_id,
        kind="checkin" if row.kind == "checkin" else "measured",
        author=row.author,
        note=row.note,
        outcome=row.outcome,
        value=exact(row.value),
        error=None if row.error_message is None else redact_text(row.error_message),
    )


def kr_detail(
    store: Store,
    ref: str,
    *,
    cycle: str | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> KrDetail:
    """Everything the KR page and ``/api/krs/{ref}`` show.

    Args:
        store: The store to read.
        ref: ``objective/kr`` (or a KR id unique across objectives).
        cycle: The cycle, when the same ref is in several (default: the newest).
        settings: For the connection's masked URL and the staleness rule (optional).
        now: The time to judge at (default: now); later as-ofs are not shown as current.

    Raises:
        UnknownKrError: No such KR.
    """
    now = now or datetime.now(UTC)
    kr = resolve(store, ref, cycle)
    return assemble(
        kr,
        KrRecords(
            measurements=store.measurements([kr.kr_id]),
            evaluations=queries.kr_evaluations(store, kr.kr_id, HISTORY_SHOWN),
            notes=store.notes([kr.kr_id]),
            alert_states=list(store.alert_states([kr.kr_id]).values()),
            alerts=store.recent_alerts(limit=ALERTS_SHOWN, ref=kr.ref),
            silences=store.silences(now, include_expired=True),
        ),
        settings=settings,
        now=now,
    )


@dataclass(frozen=True)
class KrRecords:
    """What the store holds about one KR, as read for its page.

    Attributes:
        measurements: Its measurements and check-ins, any order.
        evaluations: Its latest :data:`HISTORY_SHOWN` evaluations, newest as-of first.
        notes: Its notes, oldest as-of first.
        alert_states: Its pending or firing alert states.
        alerts: Its latest :data:`ALERTS_SHOWN` alerts (by ``objective/kr``, any cycle),
            newest first.
        silences: Silences, any target (those of the KR and its objective are kept).
    """

    measurements: Sequence[StoredMeasurement]
    evaluations: Sequence[Any]
    notes: Sequence[StoredNote]
    alert_states: Sequence[AlertState]
    alerts: Sequence[StoredAlert]
    silences: Sequence[Silence]


def assemble(
    kr: queries.KrDefinitionRow,
    records: KrRecords,
    *,
    settings: Settings | None,
    now: datetime,
) -> KrDetail:
    """One KR's page from what was read about it (:func:`kr_detail`, ``kr_details``)."""
    measurements = sorted(records.measurements, key=lambda m: m.as_of, reverse=True)
    evaluations = records.evaluations
    past = [m for m in measurements if m.as_of <= now]
    good = next((m for m in past if m.outcome == "ok"), None)
    evaluation = next((e for e in evaluations if e.evaluated_at <= now), None)
    periods = DEFAULT_STALE_AFTER_PERIODS if settings is None else settings.stale_after_periods
    (row,) = judged([_status_row(kr, evaluation, past[0] if past else None, good)], now, periods)
    points: list[tuple[datetime, Decimal]] = [
        (m.as_of, m.value) for m in past if m.outcome == "ok" and m.value is not None
    ]
    stored_notes = records.notes
    chart = chart_data(
        start=kr.cycle_start,
        end=kr.cycle_end,
        unit=kr.unit,
        kind=kr.kind,
        points=points,
        baseline=kr.baseline,
        target=kr.target_value,
        forecast_value=row.forecast_value,
        forecast_low=row.forecast_low,
        forecast_high=row.forecast_high,
        notes=[(n.as_of, n.text) for n in stored_notes if n.as_of <= now],
    )
    silences = [s for s in records.silences if s.target in (kr.ref, kr.objective_key)]
    return KrDetail(
        row=kr_row(row),
        objective_title=kr.objective_title,
        objective_type=kr.objective_type,
        cycle_start=kr.cycle_start,
        cycle_end=kr.cycle_end,
        weight=str(kr.weight),
        floor=exact(kr.floor),
        manual=kr.source_type == "manual",
        definition=definition(kr, settings),
        chart=chart,
        history=[_history_row(m) for m in measurements[:HISTORY_SHOWN]],
        evaluations=[
            EvaluationRow(
                as_of=e.evaluated_at,
                status=e.status,
                reason=e.reason or "",
                value=exact(e.value),
                progress=e.progress,
                score=e.score,
                expected_progress=e.expected_progress,
                forecast_value=exact(e.forecast_value),
            )
            for e in evaluations
        ],
        alert_states=[
            AlertStateRow(
                kind=state.kind,
                phase=state.phase,
                active_count=state.active_count,
                active_since=state.active_since,
                fired_at=state.fired_at,
                last_sent_at=state.last_sent_at,
            )
            for state in sorted(records.alert_states, key=lambda s: s.kind)
        ],
        alerts=[alert_row(a) for a in records.alerts],
        silences=[silence_row(s, now) for s in silences],
        notes=[
            NoteRow(as_of=n.as_of, created_at=n.created_at, author=n.author, text=n.text)
            for n in reversed(stored_notes)
        ],
    )
