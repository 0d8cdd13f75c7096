"""Render status rows for people (a Rich table) and for programs (JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.padding import Padding
from rich.segment import Segment, Segments
from rich.style import Style
from rich.text import Text

from okr_pipeline.cli.json_output import dumps
from okr_pipeline.cli.tables import GAP, Cell, Column, Layout, Step, build_table, folded, plan
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
    return Text(_bar(progress, expected))


def _bar(progress: float, expected: float | None) -> str:
    filled = round(max(0.0, min(1.0, progress)) * BAR_WIDTH)
    cells = ["█"] * filled + ["░"] * (BAR_WIDTH - filled)
    if expected is not None:
        mark = min(BAR_WIDTH - 1, round(max(0.0, min(1.0, expected)) * BAR_WIDTH))
        cells[mark] = "|"
    return "".join(cells)


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


def _cells(text: str) -> int:
    """Terminal cells of ``text``, as Rich counts them (quicker for plain ASCII)."""
    return len(text) if text.isascii() and text.isprintable() else _wide_cells(text)


@lru_cache(maxsize=4096)
def _wide_cells(text: str) -> int:
    return cell_len(text)  # remembered: bars and values repeat


# The cells of the status table that repeat are made once, shared by the rows (a Text costs
# microseconds; a table of 10,000 KRs has 20,000 of them). Nothing changes a cell once made.
@lru_cache(maxsize=64)
def _status_text(status: str | None) -> Text:
    return Text(status or "—", style=STATUS_STYLES.get(status or "", ""))


@lru_cache(maxsize=4096)
def _bar_cell(bar: str | None, pct: str) -> Text:
    if bar is None:
        return progress_bar(None)
    return Text(f"{bar} {pct:>4}")


@lru_cache(maxsize=4096)
def _target_text(target: Decimal | None, unit: str) -> str:
    return format_value(target, unit)  # targets repeat: formatted once each


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
    bar = None if row.progress is None else _bar(row.progress, row.expected_progress)
    cells: list[Cell] = [
        row.kr_key,
        value,
        _target_text(row.target_value, unit),
        (_bar_cell(bar, pct), pct),
        score_text,
        _status_text(row.status),
        age(row.measured_at, now),
    ]
    return cells, carried


class _Lines:
    """Lines that need no wrapping, printed in one go.

    Rich's tables and wrapping cost about a millisecond a line, and ``okr status`` over
    10,000 KRs prints 20,000 lines. :meth:`text` and :meth:`table` write the segments Rich
    would print, character for character and style for style (tests/cli/test_render_fast.py
    compares them), or say they cannot (a line too wide, a cell of several styles);
    :meth:`rich` prints through Rich, after what is pending.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.width = console.width  # asked once: the console asks the terminal each time
        self.segments: list[Segment] = []
        self._styles: dict[str | Style, Style] = {}
        self._heads: dict[tuple[tuple[Column, ...], Layout], list[Segment]] = {}
        # Styled cells repeat (a status, a bar): each padded segment is made once.
        self._padded: dict[tuple[str, str | Style, int, bool], Segment] = {}
        # A terminal that cannot show the table's lines gets Rich's ASCII ones: Rich prints.
        self.enabled = not console.options.ascii_only
        # Without a colour system (output to a pipe or a file) Rich writes each segment's
        # text alone, styles dropped: a row can then be one segment, not one per cell. A
        # recording console keeps the styles, so it gets them.
        self.plain = console.color_system is None and not console.record

    def _style(self, style: str | Style) -> Style:
        found = self._styles.get(style)
        if found is None:
            found = self._styles[style] = self.console.get_style(style, default=Style.null())
        return found

    def text(self, text: Text, indent: int = 0) -> bool:
        """Add ``text`` as a line if it fits the console's width unwrapped."""
        if not self.enabled or "\n" in text.plain:
            return False
        if _cells(text.plain) + indent > self.width:
            return False
        if indent:
            self.segments.append(Segment(" " * indent))
        if text.spans:
            # Its own style as a span, as Rich's wrapping leaves it (render() alone drops it).
            self.segments.extend(Text().append_text(text).render(self.console))
        else:
            self.segments.append(Segment(text.plain, self._style(text.style) or None))
        self.segments.append(Segment.line())
        return True

    def blank(self) -> None:
        """Add an empty line."""
        self.segments.append(Segment.line())

    def table(
        self, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], layout: Layout
    ) -> bool:
        """Add the lines of :func:`build_table`'s table (no caption), if every cell fits."""
        if not self.enabled or any(columns[i].justify == "center" for i in layout.indices):
            return False
        key = (tuple(columns), layout)
        if key not in self._heads:  # every objective's table has the same head
            self._heads[key] = [
                *self._header(columns, layout),
                Segment("─" * layout.width),
                Segment.line(),
            ]
        spec = [
            (index, width, columns[index].justify == "right", index in layout.narrow)
            for index, width in zip(layout.indices, layout.widths, strict=True)
        ]
        lines = [self._heads[key]]
        for row in rows:
            if self.plain:
                text = self._plain_row(spec, row)
                line = None if text is None else [Segment(text)]
            else:
                line = self._row(spec, row)
            if line is None:
                return False
            lines.append(line)
        for line in lines:
            self.segments.extend(line)
        return True

    def _header(self, columns: Sequence[Column], layout: Layout) -> list[Segment]:
        # As Rich draws it: each title and its right padding in the header style.
        style = self._style("table.header")
        line = []
        last = len(layout.indices) - 1
        for n, (index, width) in enumerate(zip(layout.indices, layout.widths, strict=True)):
            header = columns[index].header
            pad = " " * (width - _cells(header))
            line.append(
                Segment(pad + header if columns[index].justify == "right" else header + pad, style)
            )
            if n < last:
                line += [Segment(" ", style), Segment(" " * (GAP - 1))]
        line.append(Segment.line())
        return line

    def _row(
        self, spec: Sequence[tuple[int, int, bool, bool]], row: Sequence[Cell]
    ) -> list[Segment] | None:
        line: list[Segment] = []
        plain: list[str] = []  # unstyled text not yet in a segment
        gap = " " * GAP
        for index, width, right, narrow in spec:
            if plain:
                plain.append(gap)
            picked = row[index]
            cell = (picked[1] if narrow else picked[0]) if isinstance(picked, tuple) else picked
            style: str | Style = ""
            if isinstance(cell, Text):
                key = (cell.plain, cell.style, width, right)
                segment = self._padded.get(key)
                if segment is not None:  # a status or a bar, as in many rows before
                    if plain:
                        line.append(Segment("".join(plain)))
                        plain = []
                    line.append(segment)
                    plain.append("")  # the gap after it
                    continue
                if cell.spans:
                    return None  # several styles in one cell: Rich lays it out
                text, style = cell.plain, cell.style
            else:
                text = cell
            room = width - _cells(text)
            if room < 0 or "\n" in text:
                return None  # Rich would fold it
            padded = " " * room + text if right else text + " " * room
            if style:
                # The padding takes the cell's own style, as Rich pads it.
                if plain:
                    line.append(Segment("".join(plain)))
                    plain = []
                segment = Segment(padded, self._style(style))
                self._padded[text, style, width, right] = segment
                line.append(segment)
                plain.append("")  # the gap after it
            else:
                plain.append(padded)
        rest = "".join(plain)
        if rest:
            line.append(Segment(rest))
        line.append(Segment.line())
        return line

    def _plain_row(
        self, spec: Sequence[tuple[int, int, bool, bool]], row: Sequence[Cell]
    ) -> str | None:
        # _row's line as text alone, its newline included, or None where _row gives up.
        parts: list[str] = []
        for index, width, right, narrow in spec:
            picked = row[index]
            cell = (picked[1] if narrow else picked[0]) if isinstance(picked, tuple) else picked
            if isinstance(cell, Text):
                if cell.spans:
                    return None
                cell = cell.plain
            if cell.isascii() and cell.isprintable():
                # One cell a character (most cells): str pads it, as below, without a count.
                if len(cell) > width:
                    return None
                parts.append(cell.rjust(width) if right else cell.ljust(width))
                continue
            room = width - _cells(cell)
            if room < 0 or "\n" in cell:
                return None
            parts.append(" " * room + cell if right else cell + " " * room)
        return (" " * GAP).join(parts) + "\n"

    def rich(self, *objects: object, **options: object) -> None:
        """Print through Rich (what needs wrapping), after the lines pending."""
        self.flush()
        self.console.print(*objects, **options)  # type: ignore[arg-type]

    def flush(self) -> None:
        """Write the lines pending."""
        if self.segments:
            self.console.print(Segments(self.segments), crop=False, end="")
            self.segments = []


def print_status_tables(
    console: Console, rows: Sequence[StatusRow], now: datetime | None = None
) -> None:
    """One table per objective, titled with its score, owner and the objective it supports.

    Every objective's table has the same columns and widths (laid out over all the rows),
    so they line up; the order in which columns give way is :data:`STATUS_STEPS`.
    """
    _print_status_tables(_Lines(console), rows, now)


def _print_status_tables(out: _Lines, rows: Sequence[StatusRow], now: datetime | None) -> None:
    now = now or datetime.now(UTC)  # one "now" for every row's age
    scores = objective_score_map(rows)
    groups: dict[str, list[StatusRow]] = {}
    for row in rows:
        groups.setdefault(row.objective_key, []).append(row)
    cells = {id(row): _status_cells(row, now) for row in rows}
    width = out.width
    layout = plan(STATUS_COLUMNS, [c for c, _ in cells.values()], width, STATUS_STEPS)
    for key, members in groups.items():
        title = _objective_title(members[0], scores.get(key))
        table_rows = [cells[id(row)][0] for row in members]
        caption = CARRIED_CAPTION if any(cells[id(row)][1] for row in members) else None
        if layout is None:
            out.rich(title, highlight=False)
            for line in folded(STATUS_COLUMNS, table_rows, width=width):
                out.rich(line, highlight=False)
            if caption:
                out.rich(caption, style="dim", highlight=False)
            out.rich()
            continue
        # The title above the table, not in it: Rich would wrap it to the table's width.
        if not out.text(title):
            out.rich(title, highlight=False)
        if caption is not None or not out.table(STATUS_COLUMNS, table_rows, layout):
            out.rich(build_table(STATUS_COLUMNS, table_rows, layout, caption=caption))
        out.blank()
    out.flush()


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
    out = _Lines(console)
    _print_status_tables(out, rows, None)
    lines = reasons(rows)
    if lines:
        out.rich("[bold]Why[/bold]")
    for line in lines:
        if out.text(Text(line), indent=2):
            continue
        # Wrapped at word boundaries (KR refs stay whole), continuation lines indented.
        out.rich(Padding(Text(line), (0, 0, 0, 2), expand=False), highlight=False)
    out.flush()
