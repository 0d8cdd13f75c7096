"""``okr history KR`` (a KR's measurements, with a sparkline) and ``okr export``.

Both only read the store. ``history`` lists what was measured (or entered by hand) for each
as-of, oldest first, with when it was measured; ``export`` writes every KR's measurements
with the evaluation of their as-of, for spreadsheets and BI tools.
"""

from __future__ import annotations

import csv
import io
import sys
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.padding import Padding
from rich.text import Text

from okr_pipeline.cli.app import ProjectOpt, console, fail, settings_of
from okr_pipeline.cli.suggest import complete_kr
from okr_pipeline.cli.tables import Cell, Column, Step, print_listing

if TYPE_CHECKING:
    from okr_pipeline.okr_store.export import ExportRow
    from okr_pipeline.okr_store.records import NoteRow, StoredKeyResult, StoredMeasurement

#: ``okr history``: when the table is too wide, the run id goes first, then when each
#: value was measured, its kind and its author; the as-of and the value always stay.
HISTORY_COLUMNS = (
    Column("as of (UTC)"),
    Column("value", justify="right"),
    Column("kind"),
    Column("by", hide_empty=True),
    Column("run", justify="right"),
    Column("measured (UTC)"),
    Column("note", wrap=True, min_width=10, hide_empty=True),
)
HISTORY_STEPS: tuple[Step, ...] = (
    ("run", "drop"),
    ("measured (UTC)", "drop"),
    ("kind", "drop"),
    ("by", "drop"),
)


def _detail(m: StoredMeasurement) -> str:
    """The note of a check-in, or why there is no value."""
    note = m.note
    if m.outcome == "ok":
        return note or ""
    what = "no data" if m.outcome == "no_data" else "error"
    return f"{what}: {m.error_message}" if m.error_message else what


def measurement_item(m: StoredMeasurement) -> dict[str, Any]:
    """One measurement in ``okr history --json``."""
    return {
        "as_of": m.as_of,
        "measured_at": m.measured_at,
        "outcome": m.outcome,
        "value": m.value,
        "error": m.error_message,
        "kind": m.kind,
        "author": m.author,
        "note": m.note,
        "run_id": m.run_id,
    }


def note_item(note: NoteRow) -> dict[str, Any]:
    """One note in ``okr history --json``."""
    return {
        "as_of": note.as_of,
        "created_at": note.created_at,
        "author": note.author,
        "text": note.text,
    }


def _print_notes(notes: list[NoteRow]) -> None:
    from okr_pipeline.cli.render import clock

    if not notes:
        return
    console.print("Notes", style="bold")
    for note in notes:
        line = Text(f"{clock(note.as_of)}  ").append(f"{note.author}: ", style="dim")
        console.print(Padding(line.append(note.text), (0, 0, 0, 2), expand=False))


def value_text(value: Decimal) -> str:
    """A stored value exactly as stored (``Infinity`` and ``NaN`` as such, never a dash)."""
    from okr_pipeline.okr_core.alerting.messages import decimal_text

    return decimal_text(value) if value.is_finite() else str(value)


def _print_history(kr: StoredKeyResult, items: list[StoredMeasurement], total: int) -> None:
    from okr_pipeline.cli.render import clock, format_value, sparkline
    from okr_pipeline.okr_core.words import plural

    console.print(Text(kr.ref, style="bold").append(f": {kr.title}", style=""))
    if not items:
        how = "'okr checkin' records one" if kr.source_type == "manual" else "'okr run' measures it"
        console.print(f"  No measurements yet: {how}.", highlight=False)
        return
    good = [m for m in items if m.value is not None]
    trend = (
        f"  {format_value(good[0].value)} → {format_value(good[-1].value, kr.unit)}" if good else ""
    )
    # As many of the newest points as fit beside it; a gap is an as-of without a value.
    room = max(8, console.width - 2 - len(trend))
    console.print(f"  {sparkline([m.value for m in items][-room:])}{trend}", highlight=False)
    shown = plural(len(items), "measurement") + (f" of {total}" if total > len(items) else "")
    span = f"{clock(items[0].as_of)} to {clock(items[-1].as_of)} UTC"
    console.print(f"  {shown}, as of {span}", highlight=False)
    cells: list[list[Cell]] = [
        [
            clock(m.as_of),
            # Exact, as stored: a history is where people compare numbers digit by digit.
            "—" if m.value is None else value_text(m.value),
            m.kind,
            m.author or "",
            str(m.run_id),
            clock(m.measured_at),
            _detail(m),
        ]
        for m in items
    ]
    print_listing(
        console, HISTORY_COLUMNS, cells, steps=HISTORY_STEPS, title="Measurements, oldest first"
    )


def history(
    kr: Annotated[
        str,
        typer.Argument(
            help="The KR: objective/kr, or its id where unique.", autocompletion=complete_kr
        ),
    ],
    limit: Annotated[
        int, typer.Option("--limit", help="How many of the latest as-ofs.", min=1)
    ] = 30,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (the KR and its measurements).")
    ] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """List a KR's measurements, oldest first, with a sparkline: as-of, value or error."""
    from okr_pipeline.cli.json_output import dumps
    from okr_pipeline.cli.reading import open_store_to_read
    from okr_pipeline.cli.suggest import resolve_kr

    store = open_store_to_read(settings_of(project))
    try:
        found = resolve_kr(kr, store.active_key_results())
        measured = store.measurements([found.kr_id])
        notes = store.notes([found.kr_id])
    finally:
        store.close()
    items = measured[-limit:]
    if items:  # the notes of the as-ofs shown (and any later)
        notes = [note for note in notes if note.as_of >= items[0].as_of]
    if as_json:
        data = {
            "kr": found.ref,
            "title": found.title,
            "unit": found.unit,
            "total": len(measured),
            "measurements": [measurement_item(m) for m in items],
            "notes": [note_item(note) for note in notes],
        }
        sys.stdout.write(dumps(data) + "\n")
        return
    _print_history(found, items, len(measured))
    _print_notes(notes)


class ExportFormat(StrEnum):
    """What ``okr export`` writes."""

    csv = "csv"
    json = "json"


#: The columns of ``okr export``, in order (the keys of each JSON object too).
EXPORT_FIELDS = (
    "cycle",
    "objective",
    "kr",
    "ref",
    "title",
    "unit",
    "owner",
    "as_of",
    "measured_at",
    "outcome",
    "value",
    "error",
    "kind",
    "author",
    "note",
    "run_id",
    "status",
    "score",
    "progress",
    "expected_progress",
    "reason",
)


def export_item(row: ExportRow) -> dict[str, Any]:
    """One row of ``okr export``: exact values as text, times in ISO 8601, null when none."""
    return {
        "cycle": row.cycle,
        "objective": row.objective,
        "kr": row.kr,
        "ref": row.ref,
        "title": row.title,
        "unit": row.unit,
        "owner": row.owner,
        "as_of": row.as_of.isoformat(),
        "measured_at": row.measured_at.isoformat(),
        "outcome": row.outcome,
        "value": None if row.value is None else str(row.value),
        "error": row.error,
        "kind": row.kind,
        "author": row.author,
        "note": row.note,
        "run_id": row.run_id,
        "status": row.status,
        "score": row.score,
        "progress": row.progress,
        "expected_progress": row.expected_progress,
        "reason": row.reason,
    }


def export_text(rows: list[ExportRow], fmt: ExportFormat) -> str:
    """The rows as CSV (with a header; empty cells for null) or as a JSON array."""
    items = [export_item(row) for row in rows]
    if fmt == ExportFormat.json:
        from okr_pipeline.cli.json_output import dumps

        return dumps(items) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(items)
    return buffer.getvalue()


def export(
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="csv (with a header) or json.")
    ] = ExportFormat.csv,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")
    ] = None,
    cycle: Annotated[str | None, typer.Option("--cycle", help="Only this cycle (by name).")] = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Export every KR's measurements, with the status and score as of each, as CSV or JSON."""
    from okr_pipeline.cli.reading import open_store_to_read
    from okr_pipeline.cli.suggest import close_names
    from okr_pipeline.okr_core.words import plural
    from okr_pipeline.okr_store.export import export_rows

    store = open_store_to_read(settings_of(project))
    try:
        if cycle is not None:
            cycles = sorted({kr.cycle for kr in store.active_key_results()})
            if not cycles:
                fail(f"no cycle '{cycle}' in the store: it holds no KRs yet ('okr run' adds them)")
            if cycle not in cycles:
                close = close_names(cycle, cycles)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                fail(f"no cycle '{cycle}' in the store.{hint} Cycles: {', '.join(cycles)}")
        with store.engine.connect() as conn:
            rows = export_rows(conn, cycle)
    finally:
        store.close()
    text = export_text(rows, fmt)
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    console.print(f"Wrote {plural(len(rows), 'measurement')} to {out}.", highlight=False)
