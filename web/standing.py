"""Where KRs stand now: stale judged at read time, and the scores objectives roll up.

The one copy of these rules: ``okr status`` (``cli/render.py`` imports them from here; web
may not import cli) and the dashboard judge alike. A KR whose last good value is too old
is ``stale``; a KR puts its current, carried, stale or no score into its objective's
(rules in :mod:`okr_pipeline.okr_core.rollup`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from okr_pipeline.okr_core.rollup import KrScore, ObjectiveInput, ObjectiveScore, rollup
from okr_pipeline.okr_core.scoring import KrSpec, score
from okr_pipeline.okr_store.records import StatusRow
from okr_pipeline.run.staleness import stale_reason

__all__ = ["judged", "kr_score", "last_good_score", "objective_score_map", "score_marks"]


def judged(rows: Sequence[StatusRow], now: datetime, stale_after_periods: float) -> list[StatusRow]:
    """The rows as they stand ``now``: a KR whose last good value is too old is stale.

    The stored status is the one of the KR's last run; if runs stopped, or its source has
    been failing for long, that status no longer tells the truth, and ``stale`` does.

    Args:
        rows: Rows from ``Store.latest_status``.
        now: The time to judge at.
        stale_after_periods: ``Settings.stale_after_periods``.

    Returns:
        The rows, with ``status`` and ``reason`` replaced where the KR went stale.
    """
    result = []
    # Schedules repeat across KRs; judging each (schedule, last good as-of) once keeps
    # 10,000 rows from walking 10,000 cron iterators when they share a few schedules.
    cache: dict[tuple[datetime | None, str], str | None] = {}
    for row in rows:
        key = (row.last_good_as_of, row.schedule)
        if key not in cache:
            cache[key] = stale_reason(row.last_good_as_of, now, row.schedule, stale_after_periods)
        reason = cache[key]
        if reason is not None and row.status is not None:
            row = replace(row, status="stale", reason=reason)
        result.append(row)
    return result


def last_good_score(row: StatusRow) -> float | None:
    """The score of the KR's last good value with its current definition, or None."""
    if row.last_good_value is None or (row.kind != "milestone" and row.target_value is None):
        return None
    if row.kind in ("increase", "decrease") and row.baseline == row.target_value:
        return None  # progress cannot be measured (an automatic baseline equal to the target)
    spec = KrSpec(
        kind=row.kind,  # type: ignore[arg-type]  # the store only holds valid kinds
        baseline=row.baseline,
        target=row.target_value if row.target_value is not None else Decimal(1),
        floor=row.floor,
        weight=row.weight,
    )
    try:
        return score(spec, row.last_good_value)
    except ValueError:
        return None  # not a finite number: nothing to count


def kr_score(row: StatusRow) -> KrScore:
    """What a KR puts into its objective's score (the rules are in ``okr_core.rollup``).

    Its latest evaluation's score (``current``); else, while its source fails or answers
    nothing, its last good score (``carried``); a stale KR counts with the score it last
    had, marked ``stale``; a KR never scored is ``unscored``.
    """
    counted = row.score if row.score is not None else last_good_score(row)
    if row.status is None or counted is None:
        return KrScore(row.kr_key, None, row.weight, "unscored")
    if row.status == "stale":
        return KrScore(row.kr_key, counted, row.weight, "stale")
    return KrScore(
        row.kr_key, counted, row.weight, "current" if row.score is not None else "carried"
    )


def objective_score_map(rows: Sequence[StatusRow]) -> dict[str, ObjectiveScore]:
    """Each objective's score and its marks, rolled up the alignment tree."""
    krs: dict[str, list[KrScore]] = {}
    parents: dict[str, str | None] = {}
    for row in rows:
        krs.setdefault(row.objective_key, []).append(kr_score(row))
        parents[row.objective_key] = row.parent_key
    # A parent outside the rows shown (another cycle, archived) does not take part.
    inputs = {
        key: ObjectiveInput(krs=items, parent=parents[key] if parents[key] in krs else None)
        for key, items in krs.items()
    }
    return rollup(inputs)


def score_marks(result: ObjectiveScore | None) -> list[str]:
    """What an objective's score is made of besides fresh KR scores, one phrase each.

    E.g. ``last good score of nps``, ``partial, not scored: uptime``; empty when none.
    """
    if result is None:
        return []
    marks = []
    if result.carried:
        marks.append("last good score of " + ", ".join(result.carried))
    if result.stale:
        marks.append("stale: " + ", ".join(result.stale))
    if result.unscored:
        marks.append("partial, not scored: " + ", ".join(result.unscored))
    if result.partial_children:
        marks.append("partial objectives: " + ", ".join(result.partial_children))
    if result.marked_children:
        marks.append("marked objectives: " + ", ".join(result.marked_children))
    return marks
