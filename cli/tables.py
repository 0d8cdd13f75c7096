"""Tables that fit the terminal: ids and times are never split or cut, columns drop in order.

Rich shrinks a table that is too wide by wrapping or cutting every column, ids and times
included (``weekly-active-`` / ``listeners``, ``2026-11-25T…``). A listing here instead
measures its cells and lays itself out:

1. Columns that hold ids, times and numbers are never wrapped: they keep their full width.
2. Free-text columns (a reason, an error, a description) wrap at word boundaries.
3. While the table is wider than the console, the listing's ``steps`` apply in their stated
   order: a column narrows to its short form (the progress bar to its percentage) or is
   dropped. Each command states its order where it builds its columns (and the README,
   "Commands", repeats it).
4. If the columns that are never dropped still do not fit, each row folds: its id (the KR,
   where the row has one) on a line of its own, the other cells as ``name value`` under it,
   a line breaking only between two cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Space between two columns (padding collapsed, no vertical lines).
GAP = 2

Cell = str | Text | tuple[str | Text, str | Text]
"""A cell: its text, or ``(wide, narrow)`` for a column that can narrow."""


@dataclass(frozen=True)
class Column:
    """One column of a listing.

    Attributes:
        header: The column's title.
        justify: Alignment of its cells.
        wrap: Free text that may wrap at word boundaries; otherwise the column always has
            its full width (ids, times, numbers).
        min_width: The narrowest a wrapping column gets (longer words widen it).
        hide_empty: Left out when no row has anything in it (an author column of a KR
            nobody checked in by hand).
    """

    header: str
    justify: Literal["left", "right", "center"] = "left"
    wrap: bool = False
    min_width: int = 12
    hide_empty: bool = False


Step = tuple[str, Literal["narrow", "drop"]]
"""One step of a listing's drop order: a column's header and what happens to it."""


@dataclass(frozen=True)
class Layout:
    """The columns kept, each with its width and whether it shows its narrow form."""

    indices: tuple[int, ...]
    widths: tuple[int, ...]
    narrow: frozenset[int]

    @property
    def width(self) -> int:
        """The table's width: its columns and the gaps between them."""
        return sum(self.widths) + GAP * (len(self.widths) - 1)


def _text(cell: str | Text) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _pick(cell: Cell, narrow: bool) -> Text:
    if isinstance(cell, tuple):
        return _text(cell[1] if narrow else cell[0])
    return _text(cell)


def _plain(cell: Cell, narrow: bool) -> str:
    if isinstance(cell, tuple):
        cell = cell[1] if narrow else cell[0]
    return cell.plain if isinstance(cell, Text) else cell


def _natural(text: str) -> int:
    if text.isascii() and text.isprintable():  # one line of plain text: quick to measure
        return len(text)
    return max((cell_len(line) for line in text.splitlines()), default=0)


def _longest_word(text: str) -> int:
    return max((cell_len(word) for word in text.split()), default=0)


def _widths(column: Column, cells: Sequence[str]) -> tuple[int, int]:
    """The narrowest and the full width of ``column`` with these cells (header included)."""
    texts = {column.header, *cells}  # each text measured once: statuses, bars, ages repeat
    natural = max(_natural(text) for text in texts)
    if not column.wrap:
        return natural, natural
    words = max(_longest_word(text) for text in texts)
    return min(natural, max(column.min_width, words)), natural


def plan(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    width: int,
    steps: Sequence[Step] = (),
) -> Layout | None:
    """Lay the columns out in ``width`` cells, applying ``steps`` in order until they fit.

    Returns:
        The layout, or None when even the columns no step drops are too wide (the rows
        are then printed folded).
    """
    by_header = {column.header: index for index, column in enumerate(columns)}
    plain = [[_plain(row[i], False) for row in rows] for i in range(len(columns))]
    # (narrowest, full) width of each column, in its wide and in its narrow form.
    ranges = {(i, False): _widths(columns[i], plain[i]) for i in range(len(columns))}
    for header, action in steps:
        i = by_header[header]
        if action == "narrow":
            ranges[i, True] = _widths(columns[i], [_plain(row[i], True) for row in rows])
    kept = [
        i
        for i, column in enumerate(columns)
        if not column.hide_empty or any(map(str.strip, plain[i]))
    ]
    narrow: set[int] = set()
    pending = list(steps)

    def needed() -> int:
        return sum(ranges[i, i in narrow][0] for i in kept) + GAP * (len(kept) - 1)

    while needed() > width:
        if not pending:
            return None
        header, action = pending.pop(0)
        index = by_header[header]
        if index not in kept:
            continue
        if action == "drop":
            kept.remove(index)
        else:
            narrow.add(index)
    widths = [ranges[i, i in narrow][0] for i in kept]
    highs = [ranges[i, i in narrow][1] for i in kept]
    spare = width - needed()
    # Spare room goes to the wrapping columns, the most cramped first, up to their full width.
    while spare > 0:
        wanting = [(high - widths[n], n) for n, high in enumerate(highs) if widths[n] < high]
        if not wanting:
            break
        widths[max(wanting)[1]] += 1
        spare -= 1
    return Layout(tuple(kept), tuple(widths), frozenset(narrow))


def build_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    layout: Layout,
    *,
    title: str | Text | None = None,
    caption: str | None = None,
) -> Table:
    """A Rich table of ``rows`` with the columns and widths of ``layout``."""
    table = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for index, width in zip(layout.indices, layout.widths, strict=True):
        column = columns[index]
        table.add_column(
            column.header,
            justify=column.justify,
            width=width,
            no_wrap=not column.wrap,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(_pick(row[i], i in layout.narrow) for i in layout.indices))
    return table


def folded(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    key: int = 0,
    width: int | None = None,
) -> list[Text]:
    """Each row as its ``key`` cell on a line, then ``header value`` pairs indented under it.

    With a ``width``, the pairs fill lines of that width and a line breaks only between two
    pairs, so an id, a time or an alert's kind and transition is never split (a pair
    wider than the width alone on its line is left to the console to wrap: free text).
    """
    lines: list[Text] = []
    for row in rows:
        lines.append(_pick(row[key], False))
        parts = Text("  ")
        for index, column in enumerate(columns):
            cell = _pick(row[index], True)
            if index == key or not cell.plain.strip():
                continue
            pair = Text(f"{column.header} ", style="dim")
            pair.append_text(cell)
            if len(parts) > 2:
                if width is not None and parts.cell_len + 3 + pair.cell_len > width:
                    lines.append(parts)
                    parts = Text("  ")
                else:
                    parts.append(" · ")
            parts.append_text(pair)
        lines.append(parts)
    return lines


def print_listing(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    steps: Sequence[Step] = (),
    title: str | Text | None = None,
    caption: str | None = None,
    key: int = 0,
) -> None:
    """Print ``rows`` as a table that fits ``console``, or folded when no table fits.

    Args:
        console: Where to print; its width decides the layout.
        columns: The columns, first the one that names the row (an id).
        rows: One sequence of cells per row, in the order of ``columns``.
        steps: The drop order: what to narrow or drop, in turn, while the table is too wide.
        title: Printed above.
        caption: Printed under.
        key: The column that heads each folded row (the KR, where the row has one).
    """
    layout = plan(columns, rows, console.width, steps)
    if layout is None:
        if title is not None:
            console.print(title, highlight=False)
        for line in folded(columns, rows, key, console.width):
            console.print(line, highlight=False)
        if caption:
            console.print(caption, highlight=False, style="dim")
        return
    console.print(build_table(columns, rows, layout, title=title, caption=caption))
