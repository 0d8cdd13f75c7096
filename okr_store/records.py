"""Plain values passed into and out of the store.

They carry no SQLAlchemy state and do not depend on ``okr_core``: statuses and outcomes are
the string values of ``okr_core.scoring.Status`` (a ``StrEnum``, so a Status can be passed
directly) and of :data:`OUTCOMES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from okr_pipeline.okr_store.vocabulary import (
    MEASUREMENT_KINDS,
    OUTCOMES,
    RUN_STATUSES,
    RUN_TRIGGERS,
    STATUSES,
)

__all__ = [
    "MEASUREMENT_KINDS",
    "OUTCOMES",
    "RUN_STATUSES",
    "RUN_TRIGGERS",
    "STATUSES",
    "AlertRow",
    "EvaluationRecord",
    "MeasurementRecord",
    "MeasurementRow",
    "NoteRow",
    "RunCounts",
    "RunRow",
    "StatusRow",
    "StoredKeyResult",
    "StoredMeasurement",
    "SyncResult",
]


@dataclass(frozen=True)
class SyncResult:
    """What :meth:`Store.sync_definitions` changed, counted in key results.

    Attributes:
        added: KRs seen for the first time.
        updated: KRs whose definition changed (edited in place, history kept), including
            archived KRs that reappeared (also counted in ``restored``).
        archived: KRs no longer in the files, now archived (their history is kept).
        unchanged: KRs identical to what was stored.
        restored: archived KRs that reappeared and were unarchived.
        objectives_added: objectives seen for the first time.
        objectives_updated: objectives whose fields changed or that were unarchived.
        objectives_archived: objectives no longer in the files, now archived.
    """

    added: int = 0
    updated: int = 0
    archived: int = 0
    unchanged: int = 0
    restored: int = 0
    objectives_added: int = 0
    objectives_updated: int = 0
    objectives_archived: int = 0

    @property
    def changed(self) -> bool:
        """True if anything at all was written."""
        return bool(
            self.added
            or self.updated
            or self.archived
            or self.objectives_added
            or self.objectives_updated
            or self.objectives_archived
        )


@dataclass(frozen=True)
class StoredKeyResult:
    """Everything a run needs to fetch and score one active KR, without the YAML.

    Attributes:
        kr_id: primary key of the KR in the store (pass it back in records).
        ref: ``"objective/kr"``, for messages and ``SourceContext.kr_ref``.
        cycle: cycle name.
        objective_key: YAML id of the objective.
        kr_key: YAML id of the KR.
        title: KR title.
        unit: KR unit ("" if none).
        owner: objective owner.
        objective_type: ``"aspirational"`` or ``"committed"``.
        success_level: the objective's success level: declared, else 0.7 (aspirational)
            or 1.0 (committed).
        cycle_start: cycle start, aware UTC.
        cycle_end: cycle end (exclusive), aware UTC.
        kind: ``increase``/``decrease``/``at_least``/``at_most``/``milestone``.
        baseline: baseline value; None if not declared or not measured yet (auto).
        baseline_auto: True for ``baseline: auto`` (measured once at cycle start, see
            :meth:`Store.set_auto_baseline`).
        target: the target as written (``"+20%"``, ``"120"``), or None.
        target_value: absolute target (1 for a milestone); None while it depends on an
            automatic baseline not measured yet.
        floor: level where an at_least/at_most score reaches 0, or None.
        weight: weight in the objective's score.
        schedule: cron expression of the refresh schedule.
        source: the source mapping as written in the YAML.
        source_type: ``source["type"]``.
        last_as_of: the as-of of the KR's latest measurement (any outcome) at or before
            the time the KRs were read for (see ``Store.active_key_results``), or None.
            A ``manual`` KR is evaluated at as-ofs where nobody checked in (the check-in
            in force is scored, no measurement is written): its evaluations count too.
        last_good_as_of: the as-of of its latest good value at or before that time, or None.
        latest_as_of: the as-of of its latest measurement of all (a backfill measures
            times before it), or None; for a ``manual`` KR, of its latest measurement or
            evaluation.
        alert_policy: the KR's ``alerts:`` override as stored (JSON of an
            ``okr_core.alerting.model.AlertPolicyOverride``; validate it with
            ``AlertPolicyOverride.model_validate``), or None.
    """

    kr_id: int
    ref: str
    cycle: str
    objective_key: str
    kr_key: str
    title: str
    unit: str
    owner: str
    objective_type: str
    success_level: float
    cycle_start: datetime
    cycle_end: datetime
    kind: str
    baseline: Decimal | None
    baseline_auto: bool
    target: str | None
    target_value: Decimal | None
    floor: Decimal | None
    weight: Decimal
    schedule: str
    source: Mapping[str, Any] = field(hash=False)
    source_type: str
    last_as_of: datetime | None
    last_good_as_of: datetime | None
    alert_policy: Mapping[str, Any] | None = field(default=None, hash=False)
    latest_as_of: datetime | None = None


@dataclass(frozen=True)
class MeasurementRecord:
    """One fetch of one KR's source in a run.

    Attributes:
        kr_id: ``StoredKeyResult.kr_id``.
        measured_at: when the fetch finished, aware.
        as_of: the as-of time the source was evaluated against, aware.
        outcome: ``"ok"`` (value set), ``"no_data"`` or ``"error"`` (value None).
        value: the metric value, exact.
        error_message: redacted message for ``error`` (or a note for ``no_data``).
        error_kind: e.g. ``"retriable"``/``"fatal"`` or the error class name.
        kind: ``"measured"`` (a source answered) or ``"checkin"`` (entered by a person).
        author: who entered a check-in; None for measured values.
        note: the check-in's note, or None.
    """

    kr_id: int
    measured_at: datetime
    as_of: datetime
    outcome: str
    value: Decimal | None = None
    error_message: str | None = None
    error_kind: str | None = None
    kind: str = "measured"
    author: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class EvaluationRecord:
    """How one KR stood after a run.

    Attributes:
        kr_id: ``StoredKeyResult.kr_id``.
        evaluated_at: evaluation time, aware.
        status: a ``Status`` value (on_track, at_risk, off_track, no_data, error, stale).
        value: the value scored (the latest good one), or None.
        progress: raw progress (may be < 0 or > 1), or None.
        score: score in [0, 1], or None.
        expected_progress: share of the cycle elapsed (or the KR's pace), or None.
        forecast_value: projected value at cycle end, or None.
        forecast_score: score the forecast would give, or None.
        reason: one line explaining the status.
        forecast_low: low end of the forecast's band at cycle end, or None.
        forecast_high: high end of the forecast's band at cycle end, or None.
    """

    kr_id: int
    evaluated_at: datetime
    status: str
    value: Decimal | None = None
    progress: float | None = None
    score: float | None = None
    expected_progress: float | None = None
    forecast_value: Decimal | None = None
    forecast_score: float | None = None
    reason: str = ""
    forecast_low: Decimal | None = None
    forecast_high: Decimal | None = None


@dataclass(frozen=True)
class RunCounts:
    """How many KRs a run handled, by outcome."""

    total: int = 0
    ok: int = 0
    no_data: int = 0
    error: int = 0


@dataclass(frozen=True)
class RunRow:
    """One run, as listed by :meth:`Store.runs`."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    as_of: datetime
    flow_run_id: str | None
    total: int
    ok: int
    no_data: int
    error: int
    status: str
    lease_until: datetime | None = None
    trigger: str = "run"


@dataclass(frozen=True)
class StatusRow:
    """Where one non-archived KR stands: its latest evaluation and measurement.

    Metric fields are None when the KR was never evaluated; a missing number is None,
    never 0.

    Attributes:
        kr_id: store id of the KR.
        cycle: cycle name.
        objective_key: YAML id of the objective.
        objective_title: objective title.
        owner: objective owner.
        objective_type: ``"aspirational"`` or ``"committed"``.
        parent_key: the objective this one supports, or None.
        kr_key: YAML id of the KR.
        kr_title: KR title.
        unit: KR unit.
        kind: KR kind.
        weight: KR weight in its objective.
        schedule: cron expression of the KR's refresh schedule.
        baseline: baseline value, or None.
        target: target as written, or None.
        target_value: absolute target, or None.
        value: value of the latest evaluation.
        progress: raw progress of the latest evaluation.
        score: score of the latest evaluation.
        expected_progress: expected progress at the latest evaluation.
        forecast_value: forecast value at cycle end.
        forecast_score: forecast score at cycle end.
        status: status of the latest evaluation, or None if never evaluated.
        reason: reason given with the status ("" if none).
        evaluated_at: the as-of of the latest evaluation (the time it describes).
        measured_at: when the latest measurement (by as-of) was fetched: wall-clock time.
        outcome: outcome of the latest measurement.
        error_message: error message of the latest measurement, if it failed.
        last_good_value: latest successfully measured value (by as-of).
        last_good_at: when it was fetched (wall-clock time).
        forecast_low: low end of the forecast band at cycle end.
        forecast_high: high end of the forecast band at cycle end.
        last_good_as_of: the as-of of the latest good value (the time it describes).
        measured_as_of: the as-of of the latest measurement.
        floor: level where an at_least/at_most score reaches 0, or None; with it, the
            last good value is scored while the source fails.
    """

    kr_id: int
    cycle: str
    objective_key: str
    objective_title: str
    owner: str
    objective_type: str
    parent_key: str | None
    kr_key: str
    kr_title: str
    unit: str
    kind: str
    weight: Decimal
    schedule: str
    baseline: Decimal | None
    target: str | None
    target_value: Decimal | None
    value: Decimal | None
    progress: float | None
    score: float | None
    expected_progress: float | None
    forecast_value: Decimal | None
    forecast_score: float | None
    status: str | None
    reason: str
    evaluated_at: datetime | None
    measured_at: datetime | None
    outcome: str | None
    error_message: str | None
    last_good_value: Decimal | None
    last_good_at: datetime | None
    forecast_low: Decimal | None = None
    forecast_high: Decimal | None = None
    last_good_as_of: datetime | None = None
    measured_as_of: datetime | None = None
    floor: Decimal | None = None

    @property
    def as_of(self) -> datetime | None:
        """The as-of of the latest evaluation (None if never evaluated)."""
        return self.evaluated_at

    @property
    def ref(self) -> str:
        """``"objective/kr"``."""
        return f"{self.objective_key}/{self.kr_key}"


@dataclass(frozen=True)
class MeasurementRow:
    """One stored measurement of a KR, as listed by :meth:`Store.kr_history`.

    Attributes:
        measured_at: when the fetch finished.
        as_of: the time the value describes.
        outcome: ``ok``, ``no_data`` or ``error``.
        value: the value (``ok`` only).
        error_message: why it failed (or a note for ``no_data``).
        kind: ``measured`` or ``checkin`` (entered by a person).
        author: who entered a check-in, or None.
        note: the check-in's note, or None.
        run_id: the run that stored it.
    """

    measured_at: datetime
    as_of: datetime
    outcome: str
    value: Decimal | None
    error_message: str | None
    kind: str = "measured"
    author: str | None = None
    note: str | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class AlertRow:
    """One recorded notification, as listed by :meth:`Store.recent_alerts`.

    Attributes:
        id: store id.
        created_at: when it was recorded.
        run_id: the run that produced it, or None.
        ref: the KR, ``"objective/kr"``.
        kind: ``off_track``, ``stale`` or ``source_failing``.
        transition: ``firing``, ``repeat`` or ``resolved``.
        route: the route it went to.
        channel: the channel, redacted; "" when nothing was sent.
        delivery: ``sent``, ``silenced``, ``inhibited``, ``failed``, ``recorded`` (the route
            has no channel) or ``dry_run``.
        error: why sending failed, or None.
        payload: what the message said about the KR (JSON).
    """

    id: int
    created_at: datetime
    run_id: int | None
    ref: str
    kind: str
    transition: str
    route: str
    channel: str
    delivery: str
    error: str | None
    payload: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class StoredMeasurement:
    """A current measurement as stored, for evaluating it again (see ``Store.measurements``).

    Attributes:
        kr_id: the KR.
        run_id: the run that measured it.
        as_of: the time the value describes.
        measured_at: when it was fetched.
        outcome: ``ok``, ``no_data`` or ``error``.
        value: the value (``ok`` only).
        error_message: why it failed (or a note for ``no_data``).
        error_kind: the kind of failure, if any.
        kind: ``measured`` or ``checkin`` (entered by a person).
        author: who entered a check-in, or None.
        note: the check-in's note, or None.
    """

    kr_id: int
    run_id: int
    as_of: datetime
    measured_at: datetime
    outcome: str
    value: Decimal | None
    error_message: str | None
    error_kind: str | None
    kind: str = "measured"
    author: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class NoteRow:
    """A note on a KR, as listed by :meth:`Store.notes`.

    Attributes:
        id: store id.
        kr_id: the KR.
        as_of: the time the note is about.
        created_at: when it was written.
        author: who wrote it.
        text: the note.
    """

    id: int
    kr_id: int
    as_of: datetime
    created_at: datetime
    author: str
    text: str
