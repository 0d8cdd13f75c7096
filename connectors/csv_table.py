"""Reading a CSV table for the ``csv`` source: rows, the chosen cell or aggregate, exact numbers.

Pure functions over text; :mod:`okr_pipeline.connectors.csv_source` fetches the text and
turns a :class:`CsvError` into the KR's error.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from okr_pipeline.connectors.base import (
    SourceContext,
)
from okr_pipeline.connectors.values import NotANumberError, to_decimal

if TYPE_CHECKING:
    from okr_pipeline.connectors.csv_source import CsvSourceConfig

_SPACES = re.compile(r"[\s\u00a0\u202f]")


class CsvError(Exception):
    """The file is not what the config expects; the message says how."""


def read_capped(path: Path, limit: int) -> bytes:
    """A local file's bytes, refusing one larger than ``limit``."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(0, f"larger than max_response_bytes ({limit})")
    return data


def parse_rows(text: str, delimiter: str) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """The rows as (line number, header -> cell), and the headers."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        headers = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CsvError("the file is empty (no header row)") from None
    except csv.Error as exc:
        raise CsvError(f"not CSV: {exc}") from exc
    rows = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            # Short rows are padded: a sheet export drops trailing empty cells.
            padded = [*cells, *[""] * (len(headers) - len(cells))]
            rows.append((reader.line_num, dict(zip(headers, padded, strict=False))))
    except csv.Error as exc:
        raise CsvError(f"not CSV at line {reader.line_num}: {exc}") from exc
    return rows, headers


def check_columns(config: CsvSourceConfig, headers: Sequence[str]) -> None:
    """Refuse a config that names a column the header row does not have."""
    wanted = [config.column, *config.where, *([config.as_of_column] if config.as_of_column else [])]
    missing = [name for name in wanted if name not in headers]
    if missing:
        there = ", ".join(repr(h) for h in headers[:30]) or "none"
        raise CsvError(f"no column {missing[0]!r}; the columns are: {there}")


def select_value(
    config: CsvSourceConfig, ctx: SourceContext, rows: list[tuple[int, dict[str, str]]]
) -> Decimal | None:
    """The cell the config selects, or the aggregate of its column over the chosen rows."""
    chosen = [
        (line, row)
        for line, row in rows
        if all(row[name].strip() == value.strip() for name, value in config.where.items())
    ]
    if config.as_of_column is not None:
        dated = [(date_of(row[config.as_of_column], line), line, row) for line, row in chosen]
        limit = ctx.as_of.astimezone(UTC)
        kept = [(when, line, row) for when, line, row in dated if when <= limit]
        # Stable sort: rows of one date stay in file order, so "last" is the file's last.
        kept.sort(key=lambda item: item[0])
        if config.aggregate is None and kept:
            latest = kept[-1][0]
            kept = [item for item in kept if item[0] == latest]
        chosen = [(line, row) for _, line, row in kept]
    cells = [(line, row[config.column].strip()) for line, row in chosen]
    if config.aggregate is None:
        if len(cells) > 1:
            lines = ", ".join(str(line) for line, _ in cells[:10])
            raise CsvError(
                f"{len(cells)} rows match (lines {lines}); narrow where, or set aggregate"
            )
        if not cells or cells[0][1] == "":
            return None
        return cell_number(cells[0][1], cells[0][0], config)
    values = [(line, cell) for line, cell in cells if cell != ""]
    if config.aggregate == "count":
        return Decimal(len(values))
    if not values:
        return None
    numbers = [cell_number(cell, line, config) for line, cell in values]
    if config.aggregate == "sum":
        return to_decimal(sum(numbers, Decimal(0)))
    if config.aggregate == "avg":
        return to_decimal(sum(numbers, Decimal(0)) / len(numbers))
    if config.aggregate == "min":
        return min(numbers)
    if config.aggregate == "max":
        return max(numbers)
    return numbers[-1]


def cell_number(cell: str, line: int, config: CsvSourceConfig) -> Decimal:
    """A cell as an exact number, with the config's separators; an empty cell is an error."""
    text = cell
    where = f"line {line}, column {config.column!r}"
    if text.endswith("%"):
        if config.percent == "refuse":
            raise CsvError(
                f"{where}: {cell!r} is a percentage; set percent: number (12% -> 12) or "
                "fraction (12% -> 0.12)"
            )
        text = text[:-1].strip()
    if config.thousands_separator is not None:
        sep = config.thousands_separator
        text = _SPACES.sub("", text) if sep == " " else text.replace(sep, "")
    if config.decimal_separator == ",":
        if "." in text:
            raise CsvError(f"{where}: {cell!r} has a '.' but decimal_separator is ','")
        text = text.replace(",", ".")
    elif "," in text:
        raise CsvError(
            f"{where}: {cell!r} is not a number; for 1,234 set thousands_separator: ',' (or "
            "decimal_separator: ',' for 1,5)"
        )
    try:
        value = to_decimal(text)
    except NotANumberError as exc:
        raise CsvError(f"{where}: {exc}") from exc
    if value is None:  # pragma: no cover - an empty cell never reaches here
        raise CsvError(f"{where}: empty")
    if config.percent == "fraction" and cell.endswith("%"):
        return value / 100
    return value


def date_of(cell: str, line: int) -> datetime:
    """A row's date as a UTC instant; a bare date is its midnight (UTC)."""
    text = cell.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            # A row dated the as-of's day counts: its day is compared, not midnight.
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CsvError(
            f"line {line}: as_of_column value {cell!r} is not a date (YYYY-MM-DD or ISO 8601)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
