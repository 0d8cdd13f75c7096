"""Keep a KR's history true: evaluate each as-of from what was known then, in any order.

An evaluation at as-of T is a function of the KR and of its measurements at or before T.
When a value arrives for a time earlier than ones already stored (a backfill, a replayed
spool), the evaluations after it were computed without it; they are evaluated again, so
that the history is the same whatever order the dates were measured in.

A manual KR is evaluated at as-ofs where nobody checked in (``run/manual.py``): its as-ofs
are those of its evaluations and check-ins, each scored with the check-in in force then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult, StoredMeasurement
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.evaluate import evaluate_results
from okr_pipeline.run.fetch import FetchResult
from okr_pipeline.run.manual import in_force, is_manual


def as_result(measurement: StoredMeasurement) -> FetchResult:
    """A stored measurement as the fetch result it came from."""
    failed = measurement.outcome == "error"
    return FetchResult(
        kr_id=measurement.kr_id,
        measured_at=measurement.measured_at,
        value=measurement.value,
        error=(measurement.error_message or "source failed") if failed else None,
        error_kind=measurement.error_kind if failed else None,
    )


def evaluate_stored(
    key_results: Mapping[int, StoredKeyResult],
    measurements: Sequence[StoredMeasurement],
    good: Mapping[int, Sequence[tuple[datetime, Decimal]]],
    stale_after_periods: float,
) -> list[tuple[int, EvaluationRecord]]:
    """Evaluate stored measurements, each from the good values before its own as-of.

    Args:
        key_results: The KRs, by id (measurements of other KRs are skipped).
        measurements: The measurements to evaluate.
        good: Every good value of each KR, ``(as_of, value)`` oldest first.
        stale_after_periods: As for :func:`run.evaluate.evaluate_results`.

    Returns:
        ``(run_id, evaluation)`` pairs, one per measurement of a known KR.
    """
    rows: list[tuple[int, EvaluationRecord]] = []
    for m in measurements:
        kr = key_results.get(m.kr_id)
        if kr is None:
            continue
        before = [p for p in good.get(m.kr_id, ()) if p[0] < m.as_of]
        last = {m.kr_id: before[-1][0]} if before else {}
        (row,) = evaluate_results(
            {kr.kr_id: kr},
            [as_result(m)],
            {kr.kr_id: before},
            as_of=m.as_of,
            last_good=last,
            stale_after_periods=stale_after_periods,
        )
        rows.append((m.run_id, row))
    return rows


def reevaluate(
    store: Store,
    key_results: Mapping[int, StoredKeyResult],
    kr_ids: Iterable[int],
    *,
    after: datetime | None = None,
    at: datetime | None = None,
    stale_after_periods: float,
) -> int:
    """Evaluate again the stored as-ofs of ``kr_ids`` after (or at) a time; store them.

    Args:
        store: The store.
        key_results: The KRs' definitions, by id.
        kr_ids: The KRs whose history changed.
        after: Evaluate the as-ofs strictly after this time.
        at: Evaluate the as-of at exactly this time.
        stale_after_periods: As for :func:`run.evaluate.evaluate_results`.

    Returns:
        How many evaluations were replaced.
    """
    ids = sorted(set(kr_ids))
    manual = [i for i in ids if i in key_results and is_manual(key_results[i].source)]
    manual_set = set(manual)
    stored = [m for m in store.measurements(ids, after=after, at=at) if m.kr_id not in manual_set]
    rows: list[tuple[int, EvaluationRecord]] = []
    if stored:
        good = store.history({m.kr_id for m in stored})  # every KR gets an entry
        rows = evaluate_stored(key_results, stored, good, stale_after_periods)
    if manual:
        rows += _manual_rows(store, key_results, manual, after, at, stale_after_periods)
    store.replace_evaluations(rows)
    return len(rows)


def _manual_rows(
    store: Store,
    key_results: Mapping[int, StoredKeyResult],
    kr_ids: Sequence[int],
    after: datetime | None,
    at: datetime | None,
    stale_after_periods: float,
) -> list[tuple[int, EvaluationRecord]]:
    """Evaluate manual KRs again at their evaluations' and check-ins' as-ofs."""
    times = {
        (k, when): run_id for k, run_id, when in store.evaluation_times(kr_ids, after=after, at=at)
    }
    for m in store.measurements(kr_ids, after=after, at=at):
        times.setdefault((m.kr_id, m.as_of), m.run_id)  # a replayed check-in not yet scored
    if not times:
        return []
    good = store.history(kr_ids)
    rows: list[tuple[int, EvaluationRecord]] = []
    for (kr_id, when), run_id in sorted(times.items()):
        kr = key_results[kr_id]
        points = good.get(kr_id, [])
        (row,) = evaluate_results(
            {kr_id: kr},
            [in_force(kr, points, when, when)],
            {kr_id: [p for p in points if p[0] < when]},
            as_of=when,
            stale_after_periods=stale_after_periods,
        )
        rows.append((run_id, row))
    return rows
