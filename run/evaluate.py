"""Turn fetched values into stored measurements and evaluations (no Prefect, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import cast

from okr_pipeline.okr_core.definitions import KrKind
from okr_pipeline.okr_core.scoring import Evaluation, KrSpec, Status, evaluate
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord, StoredKeyResult
from okr_pipeline.run.fetch import FetchResult
from okr_pipeline.run.manual import ManualResult
from okr_pipeline.run.staleness import stale_reason


def spec_of(kr: StoredKeyResult) -> KrSpec | None:
    """The scoring spec of a stored KR, or None while its baseline is still unknown."""
    if kr.kind != "milestone" and kr.target_value is None:
        return None
    return KrSpec(
        kind=cast(KrKind, kr.kind),  # the store only holds valid kinds (a CHECK)
        baseline=kr.baseline,
        target=kr.target_value if kr.target_value is not None else Decimal(1),
        floor=kr.floor,
        weight=kr.weight,
    )


def outcome_of(result: FetchResult) -> str:
    """``ok`` (a value), ``no_data`` (the source answered nothing) or ``error``."""
    return "error" if not result.ok else ("no_data" if result.value is None else "ok")


def measurement_records(results: Sequence[FetchResult], as_of: datetime) -> list[MeasurementRecord]:
    """The measurement rows of a run's fetched values, all as of ``as_of``.

    A manual KR gets a row only for a check-in made in this run (kind ``checkin``, with its
    author and note); the check-in in force, stored before, is scored but not copied.
    """
    records = []
    for result in results:
        checkin = result if isinstance(result, ManualResult) else None
        if checkin is not None and not checkin.new:
            continue
        records.append(
            MeasurementRecord(
                kr_id=result.kr_id,
                measured_at=result.measured_at,
                as_of=as_of,
                value=result.value,
                outcome=outcome_of(result),
                error_message=result.error,
                error_kind=result.error_kind,
                kind="measured" if checkin is None else "checkin",
                author=None if checkin is None else checkin.author,
                note=None if checkin is None else checkin.note,
            )
        )
    return records


def evaluate_results(
    key_results: Mapping[int, StoredKeyResult],
    results: Sequence[FetchResult],
    history: Mapping[int, Sequence[tuple[datetime, Decimal]]],
    *,
    as_of: datetime,
    last_good: Mapping[int, datetime] | None = None,
    stale_after_periods: float = 3.0,
) -> list[EvaluationRecord]:
    """Score every fetched value against its KR, as of ``as_of``.

    A failed fetch becomes status ``error`` with the message kept; a source that answered
    with nothing becomes ``no_data``. Neither is ever scored as 0. The evaluation is a
    function of the KR, the value and what was known before ``as_of`` only, so a history
    measured in any order evaluates the same.

    Args:
        key_results: The KRs fetched, by id.
        results: What the sources answered.
        history: Each KR's good values as of strictly before ``as_of`` (points before the
            KR's cycle are ignored).
        as_of: The time the values describe (the ``--as-of`` time, or now).
        last_good: The as-of of each KR's latest good value before ``as_of``, if any.
        stale_after_periods: Schedule periods without a good value that make a KR stale.

    Returns:
        The evaluation rows to store, one per result.
    """
    last_good = last_good or {}
    evaluations: list[EvaluationRecord] = []
    for result in results:
        kr = key_results[result.kr_id]
        points = [p for p in history.get(kr.kr_id, ()) if kr.cycle_start <= p[0] < as_of]
        row = _evaluation_row(kr, result, points, as_of)
        if isinstance(result, ManualResult):
            row = _manual_row(row, kr, result, as_of, stale_after_periods)
        elif result.value is None:
            stale = stale_reason(last_good.get(kr.kr_id), as_of, kr.schedule, stale_after_periods)
            if stale is not None:
                now = "source failed" if result.error else "no data"
                row = replace(row, status=Status.STALE.value, reason=f"{stale} ({now})")
        evaluations.append(row)
    return evaluations


def _manual_row(
    row: EvaluationRecord,
    kr: StoredKeyResult,
    result: ManualResult,
    as_of: datetime,
    stale_after_periods: float,
) -> EvaluationRecord:
    """A manual KR is stale when its check-in in force is too old, whatever its value."""
    if result.checked_in_as_of is None:
        return replace(row, reason=f"no check-in yet: record one with 'okr checkin {kr.ref} VALUE'")
    stale = stale_reason(result.checked_in_as_of, as_of, kr.schedule, stale_after_periods)
    if stale is None:
        return row
    since = result.checked_in_as_of.isoformat(timespec="minutes")
    return replace(row, status=Status.STALE.value, reason=f"{stale} (last check-in as of {since})")


def _evaluation_row(
    kr: StoredKeyResult,
    result: FetchResult,
    points: Sequence[tuple[datetime, Decimal]],
    as_of: datetime,
) -> EvaluationRecord:
    if not result.ok:
        return EvaluationRecord(
            kr_id=kr.kr_id,
            evaluated_at=as_of,
            value=None,
            status=Status.ERROR.value,
            reason=f"source failed: {result.error_line()}",
        )
    spec = spec_of(kr)
    if spec is None:
        return EvaluationRecord(
            kr_id=kr.kr_id,
            evaluated_at=as_of,
            value=result.value,
            status=Status.NO_DATA.value,
            reason="baseline not measured yet",
        )
    degenerate = degenerate_target(kr)
    if degenerate is not None and result.value is not None:
        return EvaluationRecord(
            kr_id=kr.kr_id,
            evaluated_at=as_of,
            value=result.value,
            status=Status.ERROR.value,
            reason=degenerate,
        )
    # evaluate() adds the current value to the history itself.
    ev: Evaluation = evaluate(
        spec,
        result.value,
        history=points,
        at=as_of,
        cycle_start=kr.cycle_start,
        cycle_end=kr.cycle_end,
        success_level=kr.success_level,
    )
    return EvaluationRecord(
        kr_id=kr.kr_id,
        evaluated_at=as_of,
        value=result.value,
        progress=ev.progress,
        score=ev.score,
        expected_progress=ev.expected_progress,
        forecast_value=_exact(ev.forecast_value),
        forecast_low=_exact(ev.forecast_low),
        forecast_high=_exact(ev.forecast_high),
        forecast_score=ev.forecast_score,
        status=str(ev.status),
        reason=ev.reason,
    )


def degenerate_target(kr: StoredKeyResult) -> str | None:
    """Why the KR's progress cannot be measured (baseline equal to target), or None.

    Validation refuses a declared baseline equal to the target; ``baseline: auto`` is only
    known once measured, and a relative target of a 0 baseline (``+20%`` of 0) is 0 too.
    """
    if kr.kind not in ("increase", "decrease") or kr.baseline is None:
        return None
    if kr.target_value is None or kr.target_value != kr.baseline:
        return None
    origin = "measured at the cycle's start" if kr.baseline_auto else "declared"
    return (
        f"baseline {kr.baseline} ({origin}) equals the target {kr.target_value} "
        f"(written {kr.target!r}): progress cannot be measured; declare a baseline or an "
        "absolute target"
    )


def _exact(value: float | Decimal | None) -> Decimal | None:
    """A forecast is float math; store it as a Decimal of 12 significant digits."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(f"{value:.12g}")
