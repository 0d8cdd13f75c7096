"""Render status rows for people (a Rich table) and for programs (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from okr_store.records import StatusRow

STATUS_STYLES = {
    "on_track": "green",
    "at_risk": "yellow",
    "off_track": "red",
    "no_data": "dim",
    "error": "bold red",
    "stale": "magenta",
}
BAR_WIDTH = 12


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
    seconds = ((now or datetime.now(timezone.utc)) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def status_table(rows: Sequence[StatusRow], *, title: str = "Key results") -> Table:
    """The status table of ``okr status`` and ``okr run``."""
    table = Table(title=title, title_justify="left", expand=False)
    for name, justify in (
        ("Objective / KR", "left"), ("Value", "right"), ("Target", "right"),
        ("Progress", "left"), ("Score", "right"), ("Status", "left"), ("Measured", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    current = None
    for row in rows:
        if row.objective_key != current:
            current = row.objective_key
            table.add_row(Text(f"{row.objective_title}  ({row.owner})", style="bold"))
        status = Text(row.status or "—", style=STATUS_STYLES.get(row.status or "", ""))
        value = format_value(row.value, row.unit)
        if row.status == "error" and row.last_good_value is not None:
            value = f"{format_value(row.last_good_value, row.unit)} (last good, {age(row.last_good_at)})"
        pct = "" if row.progress is None else f" {row.progress:4.0%}"
        table.add_row(
            f"  {row.kr_key}: {row.kr_title}",
            value,
            format_value(row.target_value, row.unit),
            progress_bar(row.progress, row.expected_progress).append(pct),
            "—" if row.score is None else f"{row.score:.2f}",
            status,
            age(row.measured_at),
        )
    return table


def reasons(rows: Sequence[StatusRow]) -> list[str]:
    """One line per KR that is not on track, saying why."""
    return [
        f"{row.objective_key}/{row.kr_key}: {row.status} — {row.error_message or row.reason}"
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
    """Print the status table followed by the reasons for anything not on track."""
    console.print(status_table(rows))
    for line in reasons(rows):
        console.print(f"  {line}", highlight=False)
