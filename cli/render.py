"""Render status rows for people (a Rich table) and for programs (JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from okr_pipeline.cli.json_output import dumps
from okr_pipeline.cli.tables import Cell, Column, Step, build_table, folded, plan
from okr_pipeline.okr_core.alerting.messages import PLAIN_DIGITS, decimal_text
from okr_pipeline.okr_core.rollup import ObjectiveScore
from okr_pipeline.okr_store.records import StatusRow

# One copy of where KRs stand (stale at read time, what each puts into its objective's
# score) for the terminal and the dashboard: web may not import cli, so it lives there.
# ``judged`` is imported from here by the commands that list KRs (a re-export).
from okr_pipeline.web.standing import judged as judged
from okr_pipeline.web.standing import kr_score, objective_score_map, score_marks

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


SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[Decimal | None]) -> str:
    """One block per value, from ▁ (the lowest) to █ (the highest).

    A missing value (no data, an error) is a gap, never a low block: it is not 0. All
    values equal show as a flat middle line.
    """
    numbers = [v for v in values if v is not None and v.is_finite()]
    if not numbers:
        return " " * len(values)
    low, high = min(numbers), max(numbers)
    top = len(SPARK_BLOCKS) - 1
    blocks = []
    for value in values:
        if value is None or not value.is_finite():
            blocks.append(" ")
        elif high == low:
            blocks.append(SPARK_BLOCKS[top // 2])
        else:
            blocks.append(SPARK_BLOCKS[round((value - low) / (high - low) * top)])
    return "".join(blocks)


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


def clock(when: datetime | None) -> str:
    """A time for a table: ``2026-11-26 04:06`` in UTC (the table's header says UTC)."""
    if when is None:
        return "—"
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def age(when: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``when`` was, in words a person reads at a glance."""
    if when is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "now"


def describe_objective_score(result: ObjectiveScore | None) -> str:
    """``score 0.56`` and what it is made of, e.g. ``(last good score of nps)``."""
    text = "score —" if result is None or result.score is None else f"score {result.score:.2f}"
    marks = score_marks(result)
    return f"{text} ({'; '.join(marks)})" if marks else text


#: The status table's columns. The KR id, its value and its status are always shown.
STATUS_COLUMNS = (
    Column("KR"),
    Column("Value", justify="right"),
    Column("Target", justify="right"),
    Column("Progress"),
    Column("Score", justify="right"),
    Column("Status"),
    Column("Measured", justify="right"),
)
#: What gives way, in this order, when the status table is wider than the terminal: the
#: progress bar shrinks to its percentage, then the age of the measurement goes, then the
#: target, the progress and the score. If the rest is still too wide, each KR's row folds
#: under its id.
STATUS_STEPS: tuple[Step, ...] = (
    ("Progress", "narrow"),
    ("Measured", "drop"),
    ("Target", "drop"),
    ("Progress", "drop"),
    ("Score", "drop"),
)


def _objective_title(row: StatusRow, result: ObjectiveScore | None) -> Text:
    title = Text(row.objective_title, style="bold")
    parts = [row.owner, row.objective_type, describe_objective_score(result)]
    if row.parent_key:
        parts.append(f"supports {row.parent_key}")
    return title.append(" · " + " · ".join(parts), style="")


def _status_cells(row: StatusRow, now: datetime | None) -> tuple[list[Cell], bool]:
    """The cells of one KR's row, and whether its score is a carried one."""
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
    pct = "—" if row.progress is None else f"{row.progress:4.0%}".strip()
    counted = kr_score(row)
    score_text = "—" if counted.score is None else f"{counted.score:.2f}"
    carried = counted.score is not None and counted.score != row.score
    if carried:
        score_text += "*"  # the last good score, counted in the objective's: said so below
    bar = progress_bar(row.progress, row.expected_progress)
    if row.progress is not None:
        bar.append(f" {pct:>4}")
    cells: list[Cell] = [
        row.kr_key,
        value,
        format_value(row.target_value, unit),
        (bar, pct),
        score_text,
        Text(row.status or "—", style=STATUS_STYLES.get(row.status or "", "")),
        age(row.measured_at, now),
    ]
    return cells, carried


def print_status_tables(
    console: Console, rows: Sequence[StatusRow], now: datetime | None = None
) -> None:
    """One table per objective, titled with its score, owner and the objective it supports.

    Every objective's table has the same columns and widths (laid out over all the rows),
    so they line up; the order in which columns give way is :data:`STATUS_STEPS`.
    """
    scores = objective_score_map(rows)
    groups: dict[str, list[StatusRow]] = {}
    for row in rows:
        groups.setdefault(row.objective_key, []).append(row)
    cells = {id(row): _status_cells(row, now) for row in rows}
    layout = plan(STATUS_COLUMNS, [c for c, _ in cells.values()], console.width, STATUS_STEPS)
    for key, members in groups.items():
        title = _objective_title(members[0], scores.get(key))
        table_rows = [cells[id(row)][0] for row in members]
        caption = CARRIED_CAPTION if any(cells[id(row)][1] for row in members) else None
        if layout is None:
            console.print(title, highlight=False)
            for line in folded(STATUS_COLUMNS, table_rows, width=console.width):
                console.print(line, highlight=False)
            if caption:
                console.print(caption, style="dim", highlight=False)
            console.print()
            continue
        # The title above the table, not in it: Rich would wrap it to the table's width.
        console.print(title, highlight=False)
        console.print(build_table(STATUS_COLUMNS, table_rows, layout, caption=caption))
        console.print()


def reasons(rows: Sequence[StatusRow]) -> list[str]:
    """One line per KR that is not on track, saying why."""
    return [
        f"{row.objective_key}/{row.kr_key} ({row.kr_title}): {row.status} — "
        f"{row.error_message or row.reason}"
        for row in rows
        if row.status not in (None, "on_track") and (row.error_message or row.reason)
    ]


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
    return dumps(items)


def print_rows(console: Console, rows: Sequence[StatusRow]) -> None:
    """Print the status tables, then why each KR that is not on track is where it is.

    Args:
        console: Where to print.
        rows: The KRs, as :func:`judged` returns them.
    """
    print_status_tables(console, rows)
    lines = reasons(rows)
    if lines:
        console.print("[bold]Why[/bold]")
    for line in lines:
        # Wrapped at word boundaries (KR refs stay whole), continuation lines indented.
        console.print(Padding(Text(line), (0, 0, 0, 2), expand=False), highlight=False)
