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

from flows.staleness import stale_reason
from okr_core.scoring import ObjectiveScoreInput, objective_scores
from okr_store.records import StatusRow

STATUS_STYLES = {
    "on_track": "green",
    "at_risk": "yellow",
    "off_track": "red",
    "no_data": "dim",
    "error": "bold red",
    "stale": "magenta",
}
BAR_WIDTH = 8


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
    text = f"{value.normalize():f}" if value == value.to_integral() else f"{value:.4g}"
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
        reason = stale_reason(row.last_good_at, now, row.schedule, stale_after_periods)
        if reason is not None and row.status is not None:
            row = replace(row, status="stale", reason=reason)
        result.append(row)
    return result


def objective_score_map(rows: Sequence[StatusRow]) -> dict[str, float | None]:
    """Each objective's score: the weighted mean of its KRs, rolled up the alignment tree."""
    inputs: dict[str, ObjectiveScoreInput] = {}
    for row in rows:
        current = inputs.get(row.objective_key)
        scores = list(current.kr_scores) if current else []
        scores.append((row.score, row.weight))
        inputs[row.objective_key] = ObjectiveScoreInput(kr_scores=scores, parent=row.parent_key)
    known = set(inputs)
    # A parent outside the rows shown (another cycle, archived) does not take part.
    for key, item in inputs.items():
        if item.parent is not None and item.parent not in known:
            inputs[key] = ObjectiveScoreInput(kr_scores=item.kr_scores, parent=None)
    return objective_scores(inputs)


def status_tables(rows: Sequence[StatusRow], now: datetime | None = None) -> list[Table]:
    """One table per objective, titled with its score, owner and the objective it supports."""
    scores = objective_score_map(rows)
    tables: list[Table] = []
    table: Table | None = None
    current = None
    for row in rows:
        if row.objective_key != current:
            current = row.objective_key
            score = scores.get(row.objective_key)
            parts = [f"[bold]{row.objective_title}[/bold]", row.owner, row.objective_type]
            parts.append("score —" if score is None else f"score {score:.2f}")
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
        if row.status == "error":
            # The last good value stays visible, marked with its age, never replaced by 0.
            value = (
                "—"
                if row.last_good_value is None
                else (f"{format_value(row.last_good_value)} ({age(row.last_good_at, now)})")
            )
        pct = "" if row.progress is None else f" {row.progress:4.0%}"
        table.add_row(
            row.kr_key,
            value,
            format_value(row.target_value, unit),
            progress_bar(row.progress, row.expected_progress).append(pct),
            "—" if row.score is None else f"{row.score:.2f}",
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


def status_json(rows: Sequence[StatusRow]) -> str:
    """The rows of ``okr status --json``: numbers as JSON numbers, values as exact strings."""
    items = [
        {
            "objective": row.objective_key,
            "id": row.kr_key,
            "title": row.kr_title,
            "owner": row.owner,
            "unit": row.unit,
            "value": row.value,
            "target": row.target_value,
            "progress": row.progress,
            "score": row.score,
            "expected_progress": row.expected_progress,
            "status": row.status,
            "reason": row.reason,
            "measured_at": row.measured_at,
            "error": row.error_message,
        }
        for row in rows
    ]
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
