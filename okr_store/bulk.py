"""Fast all-or-nothing bulk inserts.

On PostgreSQL with psycopg 3 the rows go through ``COPY ... FROM STDIN``: several times
faster than an executemany INSERT, most of whose cost is per-statement round trips and
per-row trigger work. Values still pass through the columns' SQLAlchemy bind processors,
so :class:`~okr_store.types.ExactDecimal` and :class:`~okr_store.types.UtcDateTime` refuse
floats and naive datetimes exactly as they do for ordinary statements. Elsewhere the rows
go out as executemany INSERTs in chunks.

Either way the caller's transaction holds everything: a bad row aborts the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

#: Rows per executemany call on backends without COPY: bounds one statement's memory.
INSERT_CHUNK = 5000


def bulk_insert(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` inside ``conn``'s transaction.

    Args:
        conn: a connection inside a transaction (the caller commits or rolls back).
        table: target table.
        columns: column names, in the order of each row's values.
        rows: the rows.

    Raises:
        sqlalchemy.exc.StatementError: a value cannot be bound (e.g. a float for an exact
            decimal); on PostgreSQL COPY also for constraint violations, as the usual
            ``IntegrityError`` subclasses of ``DBAPIError``.
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy(conn, table, columns, rows)
        return
    names = list(columns)
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        conn.execute(sa.insert(table), [dict(zip(names, row, strict=True)) for row in chunk])


def _copy(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    statement = (
        f"COPY {quote(table.name)} ({', '.join(quote(name) for name in columns)}) FROM STDIN"
    )
    # The dialect's own implementation of each type: a generic JSON column binds through
    # PostgreSQL's JSON type there (a plain dict cannot be written to COPY).
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    for index, name in enumerate(columns):
        bind = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if bind is not None:
            processors.append((index, bind))
    width = len(columns)
    processed: list[list[Any]] = []
    try:
        # Only the columns that have a processor are touched (a few of a dozen).
        for row in rows:
            if len(row) != width:
                raise ValueError(f"a row of {len(row)} values for {width} columns")
            values = list(row)
            for index, process in processors:
                values[index] = process(values[index])
            processed.append(values)
    except (TypeError, ValueError) as exc:
        raise sa.exc.StatementError(str(exc), statement, None, exc) from exc
    driver_connection = conn.connection.driver_connection
    assert driver_connection is not None
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in processed:
                copy.write_row(row)
    except dialect.loaded_dbapi.Error as exc:
        # Same exception types as an INSERT would raise (IntegrityError, DataError, ...).
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
