"""Render status rows for people (a Rich table) and for programs (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from okr_pipeline.okr_core.alerting.messages import PLAIN_DIGITS, decimal_text
from okr_pipeline.okr_core.rollup import KrScore, ObjectiveInput, ObjectiveScore, rollup
from okr_pipeline.okr_core.scoring import KrSpec, score
from okr_pipeline.okr_store.records import StatusRow
from okr_pipeline.run.staleness import stale_reason

STATUS_STYLES = {
    "on_track": "green",
    "at_risk": "yellow",
    "off_track": "red",
    "no_data": "dim",
    "error": "bold red",
    "stale": "magenta",
}
BAR_WIDTH = 8
CARRIED_CAPTION = "* last good score, counted in the objective's score while there is no new one"


def progress_bar(progress: float | None, expected: float | None = None) -> Text:
    """A fixed-width bar for a progress in [0, 1], with the expected pace marked ``|``."""
    if progress is None:
        return Text("—".ljust(BAR_WIDTH), style="dim")
    filled = round(max(0.0, min(1.0, progress)) * BAR_WIDTH)
    cells = ["█"] * filled + ["░"] * (BAR_WIDTH - filled)
    if expected is not None:
        mark = min(BAR_WIDTH - 1, round(max(0.0, min(1.0, expected)) * BAR_WIDTH))
        cells[mark] = "|"
    return Text("".join(cells))


def format_value(value: Decimal | None, unit: str = "") -> str:
    """A value for display; a missing value shows as a dash, never as 0."""
    if value is None:
        return "—"
    if value.is_finite() and abs(value.adjusted()) > PLAIN_DIGITS:
        text = f"{value:.4g}"  # 1e999999999 written out would be a billion digits
    elif value == value.to_integral():
        text = decimal_text(value)
    else:
        text = f"{value:.4g}"
    return f"{text} {unit}".strip()


def age(when: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``when`` was, in words a person reads at a glance."""
    if when is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "now"


def judged(rows: Sequence[StatusRow], now: datetime, stale_after_periods: float) -> list[StatusRow]:
    """The rows as they stand ``now``: a KR whose last good value is too old is stale.

    The stored status is the one of the KR's last run; if runs stopped, or its source has
    been failing for long, that status no longer tells the truth, and ``stale`` does.
    """
    result = []
    for row in rows:
        reason = stale_reason(row.last_good_as_of, now, row.schedule, stale_after_periods)
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


def describe_objective_score(result: ObjectiveScore | None) -> str:
    """``score 0.56`` and what it is made of, e.g. ``(last good score of nps)``."""
    text = "score —" if result is None or result.score is None else f"score {result.score:.2f}"
    if result is None:
        return text
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
    return f"{text} ({'; '.join(marks)})" if marks else text


def status_tables(rows: Sequence[StatusRow], now: datetime | None = None) -> list[Table]:
    """One table per objective, titled with its score, owner and the objective it supports."""
    scores = objective_score_map(rows)
    tables: list[Table] = []
    table: Table | None = None
    current = None
    for row in rows:
        if row.objective_key != current:
            current = row.objective_key
            parts = [f"[bold]{row.objective_title}[/bold]", row.owner, row.objective_type]
            parts.append(describe_objective_score(scores.get(row.objective_key)))
            if row.parent_key:
                parts.append(f"supports {row.parent_key}")
            table = Table(
                title=" · ".join(parts),
                title_justify="left",
                box=box.SIMPLE_HEAD,
                pad_edge=False,
                expand=False,
            )
            table.add_column("KR", min_width=12, overflow="fold", ratio=1)
            for name, justify in (
                ("Value", "right"),
                ("Target", "right"),
                ("Progress", "left"),
                ("Score", "right"),
                ("Status", "left"),
                ("Measured", "right"),
            ):
                table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
            tables.append(table)
        assert table is not None
        # Short units ("%", "h", "ms") fit beside the number; longer ones are in the title.
        unit = row.unit if len(row.unit) <= 2 else ""
        value = format_value(row.value, unit)
        if row.status == "error" or (row.status == "stale" and row.value is None):
            # The last good value stays visible, marked with its age, never replaced by 0.
            value = (
                "—"
                if row.last_good_value is None
                else (f"{format_value(row.last_good_value)} ({age(row.last_good_at, now)})")
            )
        pct = "" if row.progress is None else f" {row.progress:4.0%}"
        counted = kr_score(row)
        score_text = "—" if counted.score is None else f"{counted.score:.2f}"
        if counted.score is not None and counted.score != row.score:
            # The last good score, counted in the objective's: said so under the table.
            score_text += "*"
            table.caption = CARRIED_CAPTION
        table.add_row(
            row.kr_key,
            value,
            format_value(row.target_value, unit),
            progress_bar(row.progress, row.expected_progress).append(pct),
            score_text,
            Text(row.status or "—", style=STATUS_STYLES.get(row.status or "", "")),
            age(row.measured_at, now),
        )
    return tables


def reasons(rows: Sequence[StatusRow]) -> list[str]:
    """One line per KR that is not on track, saying why."""
    return [
        f"{row.objective_key}/{row.kr_key} ({row.kr_title}): {row.status} — "
        f"{row.error_message or row.reason}"
        for row in rows
        if row.status not in (None, "on_track") and (row.error_message or row.reason)
    ]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _objective_json(result: ObjectiveScore | None) -> dict[str, Any]:
    if result is None:
        return {"score": None, "partial": True}
    return {
        "score": result.score,
        "partial": result.partial,
        "carried": list(result.carried),
        "stale": list(result.stale),
        "unscored": list(result.unscored),
        "partial_children": list(result.partial_children),
        "marked_children": list(result.marked_children),
    }


def status_json(rows: Sequence[StatusRow]) -> str:
    """The rows of ``okr status --json``: numbers as JSON numbers, values as exact strings.

    One object per KR (fields in the README, "Commands"), each with its objective's score
    and what that score is made of.
    """
    objectives = objective_score_map(rows)
    items = []
    for row in rows:
        counted = kr_score(row)
        items.append(
            {
                "objective": row.objective_key,
                "id": row.kr_key,
                "title": row.kr_title,
                "owner": row.owner,
                "unit": row.unit,
                "value": row.value,
                "as_of": row.evaluated_at,
                "baseline": row.baseline,
                "target": row.target_value,
                "target_as_written": row.target,
                "progress": row.progress,
                "score": row.score,
                "counted_score": counted.score,
                "score_basis": counted.basis,
                "expected_progress": row.expected_progress,
                "status": row.status,
                "reason": row.reason,
                "measured_at": row.measured_at,
                "last_good_value": row.last_good_value,
                "last_good_at": row.last_good_at,
                "error": row.error_message,
                "objective_score": _objective_json(objectives.get(row.objective_key)),
            }
        )
    return json.dumps(items, default=_json_default, indent=2)


def print_rows(console: Console, rows: Sequence[StatusRow]) -> None:
    """Print the status tables, then why each KR that is not on track is where it is.

    Args:
        console: Where to print.
        rows: The KRs, as :func:`judged` returns them.
    """
    for table in status_tables(rows):
        console.print(table)
    lines = reasons(rows)
    if lines:
        console.print("\n[bold]Why[/bold]")
    for line in lines:
        console.print(f"  {line}", highlight=False, soft_wrap=True)
