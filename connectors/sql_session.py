"""One KR's query on a read-only connection: binding its times, reading its one value.

Shared by the SQL source's single path (:mod:`connectors.sql`) and its batch path
(:mod:`connectors.sql_batch`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect

from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.sql_engine import end_transaction, ms
from okr_pipeline.connectors.values import NotANumberError, to_decimal

__all__ = [
    "BIND_PARAM",
    "MAX_ROWS_COUNTED",
    "StaleConnection",
    "bind_names",
    "driver_sql",
    "no_result_set",
    "params",
    "read_only",
    "single_value",
    "statement",
    "value_of",
]

MAX_ROWS_COUNTED = 1000

# The pattern SQLAlchemy's text() uses to find bind parameters (TextClause): it skips
# '::' casts and '\:' escapes. Matching it here costs microseconds where compiling the
# statement to ask SQLAlchemy costs ~0.1 ms, which adds up over 10,000 KRs a run; a test
# checks that both agree. SQLAlchemy's "(?<![:\w\\]):(\w+)" is written colon first, the
# character before it looked at once a colon is found: the same matches, found five times
# faster (a pattern that begins with a look-behind is tried at every position).
BIND_PARAM = re.compile(r":(?<![:\w\x5c]:)(\w+)(?![:\w])", re.UNICODE)


@lru_cache(maxsize=65536)  # sized for every query of a large company (thousands of KRs)
def bind_names(query: str) -> frozenset[str]:
    """The bind parameters a query names (``:as_of`` ...), as SQLAlchemy's text() finds them.

    Args:
        query: The KR's SQL.

    Returns:
        The parameter names, without colons.
    """
    return frozenset(BIND_PARAM.findall(query))


class StaleConnection(Exception):
    """A pooled connection turned out to be dead when used.

    Args:
        error: The driver error that said so.
    """

    def __init__(self, error: sa_exc.DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


@lru_cache(maxsize=65536)
def driver_sql(query: str, dialect: Dialect) -> str:
    """The query compiled once to the driver's own SQL, for ``exec_driver_sql``.

    Compiling text() on every execution is most of SQLAlchemy's cost per query, and a KR's
    query never changes: ":as_of" becomes "%(as_of)s", a literal "%" is doubled.

    Args:
        query: The KR's SQL.
        dialect: The engine's dialect.

    Returns:
        The driver-level SQL.
    """
    return str(sa.text(query).compile(dialect=dialect))


def params(query: str, ctx: SourceContext, *, aware: bool = True) -> dict[str, datetime]:
    """The times a query binds, in UTC: aware, or naive where the database keeps no zone.

    Args:
        query: The KR's SQL.
        ctx: The evaluation context.
        aware: Whether to keep the UTC zone (PostgreSQL) or drop it.

    Returns:
        ``{name: time}`` for the parameters the query uses.
    """
    values = {"as_of": ctx.as_of, "cycle_start": ctx.cycle_start, "cycle_end": ctx.cycle_end}
    bound = {name: values[name].astimezone(UTC) for name in bind_names(query)}
    if not aware:
        bound = {name: value.replace(tzinfo=None) for name, value in bound.items()}
    return bound


def statement(query: str, ctx: SourceContext, dialect: Dialect) -> sa.TextClause:
    """The query as a text clause with its times bound and typed.

    Only PostgreSQL stores time zones reliably; elsewhere a naive UTC timestamp compares
    correctly with naive UTC columns and is not mangled by the driver.

    Args:
        query: The KR's SQL.
        ctx: The evaluation context.
        dialect: The engine's dialect.

    Returns:
        The executable clause.
    """
    aware = dialect.name == "postgresql"
    bound = params(query, ctx, aware=aware)
    return sa.text(query).bindparams(
        *(
            sa.bindparam(name, value, type_=sa.DateTime(timezone=aware))
            for name, value in sorted(bound.items())
        )
    )


@contextmanager
def read_only(
    conn: Connection, timeout: float, session_timeout: float | None = None
) -> Iterator[Callable[[], bool]]:
    """Make the connection's transaction read-only with a timeout; always roll back.

    Args:
        conn: The connection, before its first statement.
        timeout: The statement timeout for this query, in seconds.
        session_timeout: On PostgreSQL, the timeout the session was opened with (read-only
            by default too), or None when the session defaults were not set.

    Yields:
        A function telling whether the SQLite deadline fired (other databases report
        their own timeouts with an error code).
    """
    dialect = conn.dialect.name
    fired = False
    raw: Any = None
    if dialect == "postgresql":
        # The session was opened read-only with the connection's timeout (create_engine);
        # the rollback below undoes any SET a query makes and the pool's reset releases
        # what a rollback does not. Only a KR's own timeout needs a statement here.
        if session_timeout is None:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        if session_timeout is None or ms(timeout) != ms(session_timeout):
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms(timeout)}")
    elif dialect in {"mysql", "mariadb"}:
        if getattr(conn.dialect, "is_mariadb", False):
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {timeout:.3f}")
        else:
            conn.exec_driver_sql(f"SET SESSION max_execution_time = {ms(timeout)}")
        # Session default first, so even a statement that implicitly commits (DDL) starts
        # its new transaction read-only.
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        conn.exec_driver_sql("START TRANSACTION READ ONLY")
    elif dialect == "sqlite":
        # Re-asserted on every fetch: a pooled connection may have run "PRAGMA query_only=OFF".
        conn.exec_driver_sql("PRAGMA query_only = ON")
        raw = conn.connection.driver_connection
        deadline = time.monotonic() + timeout

        def _past_deadline() -> int:
            nonlocal fired
            if time.monotonic() > deadline:
                fired = True
                return 1  # non-zero aborts the statement with SQLITE_INTERRUPT
            return 0

        raw.set_progress_handler(_past_deadline, 10_000)
    try:
        yield lambda: fired
    finally:
        if raw is not None:
            raw.set_progress_handler(None, 0)
        # Never commit: whatever the query did, if anything, is undone.
        end_transaction(conn)


def single_value(result: sa.CursorResult[Any], column: str | None, where: str) -> Decimal | None:
    """The one value of a one-row result.

    Args:
        result: The query's result.
        column: The column to read; default: the only one, or one named 'value'.
        where: "KR ...: sql source on connection ..." prefix for messages.

    Returns:
        The value as an exact Decimal, or None for NULL or NaN.

    Raises:
        FatalSourceError: Not one row, no such column, or not a number.
    """
    if not result.returns_rows:
        raise no_result_set(where)
    return value_of(list(result.keys()), result.fetchmany(MAX_ROWS_COUNTED + 1), column, where)


def no_result_set(where: str) -> FatalSourceError:
    """The error of a statement that returned no rows at all (not even an empty set).

    Args:
        where: "KR ...: sql source on connection ..." prefix.

    Returns:
        The error to raise.
    """
    return FatalSourceError(
        f"{where}: the query returned no result set; expected a SELECT returning one row"
    )


def value_of(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], column: str | None, where: str
) -> Decimal | None:
    """The one value of a result read as column names and up to MAX_ROWS_COUNTED + 1 rows.

    Args:
        columns: The result's column names.
        rows: Its first rows.
        column: The column to read; default: the only one, or one named 'value'.
        where: "KR ...: sql source on connection ..." prefix for messages.

    Returns:
        The value as an exact Decimal, or None for NULL or NaN.

    Raises:
        FatalSourceError: Not one row, no such column, or not a number.
    """
    if len(rows) != 1:
        count = (
            "no"
            if not rows
            else (
                f"more than {MAX_ROWS_COUNTED}" if len(rows) > MAX_ROWS_COUNTED else str(len(rows))
            )
        )
        raise FatalSourceError(f"{where}: the query returned {count} rows; expected 1")
    index = _column_index(columns, column, where)
    try:
        return to_decimal(rows[0][index])
    except NotANumberError as exc:
        raise FatalSourceError(f"{where}: column {columns[index]!r} {exc}") from exc


def _column_index(columns: Sequence[str], wanted: str | None, where: str) -> int:
    lowered = [c.lower() for c in columns]
    shown = ", ".join(repr(c) for c in columns)
    if wanted is not None:
        if wanted.lower() in lowered:
            return lowered.index(wanted.lower())
        raise FatalSourceError(f"{where}: the query has no column {wanted!r}; columns: {shown}")
    if len(columns) == 1:
        return 0
    if "value" in lowered:
        return lowered.index("value")
    raise FatalSourceError(
        f"{where}: the query returned {len(columns)} columns ({shown}); expected one, "
        f"or a column named 'value', or set 'column' to choose one"
    )
