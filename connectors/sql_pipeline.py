"""A batch of statements sent through libpq's pipeline mode, below psycopg's cursors.

psycopg's cursors cost tens of microseconds of Python per statement (query conversion,
result bookkeeping), holding the GIL: over a batch of KR queries, each followed by a
rollback to a savepoint, that was most of a large run's client time. Here a batch goes
straight to libpq (``psycopg.pq``, psycopg's public wrapper of it): each statement is one
``PQsendQueryParams`` with its parameters already in libpq's own form, and each result is
read back as a ``PGresult``; psycopg's loaders (``psycopg.adapt.Transformer``) turn the
few rows a KR returns into the same Python values a cursor would.

The statements use the extended protocol, which runs exactly one statement per query
(the server refuses "SELECT 1; DELETE ..."), like every KR query sent through a cursor.
"""

from __future__ import annotations

import contextlib
import re
import selectors
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from okr_pipeline.connectors.sql_session import BIND_PARAM

__all__ = ["Statement", "numbered_sql", "run_pipeline", "timestamptz"]

# SQLAlchemy's text() rules: a parameter as sql_session.BIND_PARAM finds it, and "\:name"
# for the literal ":name" (compiler.BIND_PARAMS_ESC). A test checks this agrees with
# SQLAlchemy's own "$n" compilation.
_ESCAPED = re.compile(r"\x5c(:\w*)(?![:\w])", re.UNICODE)

#: The type of every parameter a KR query binds (as_of, cycle_start, cycle_end).
TIMESTAMPTZ_OID = 1184

#: One statement of a pipeline: SQL text with ``$n`` placeholders, and their values.
Statement = tuple[bytes, Sequence[bytes | None] | None]


@lru_cache(maxsize=65536)  # sized for every query of a large company
def numbered_sql(query: str) -> tuple[str, tuple[str, ...]]:
    """A KR query with its ``:name`` parameters as libpq's ``$1``, ``$2``...

    Args:
        query: The KR's SQL, as written.

    Returns:
        The SQL, and the parameter names in the order of their numbers.
    """
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _ESCAPED.sub(lambda m: m.group(1), BIND_PARAM.sub(number, query)), tuple(names)


@lru_cache(maxsize=64)  # a run binds the same few times (as-of, cycle bounds) to every KR
def timestamptz(value: datetime) -> bytes:
    """A time as a ``timestamptz`` parameter in text form, in UTC.

    Args:
        value: An aware time.

    Returns:
        Its ISO 8601 text, which PostgreSQL reads whatever the session's DateStyle.
    """
    return value.astimezone(UTC).isoformat().encode()


def run_pipeline(pgconn: Any, statements: Sequence[Statement], poll: float = 1.0) -> list[Any]:
    """Send every statement at once and read one result per statement.

    The caller holds the connection's lock, and the connection is idle or in a
    transaction (not already in pipeline mode). When a statement fails, the server skips
    the ones after it: their results have status ``PIPELINE_ABORTED``.

    Args:
        pgconn: The connection's ``psycopg.pq.PGconn``.
        statements: The statements, in order.
        poll: Seconds between two looks at the socket while waiting (the server's
            statement timeout bounds each statement).

    Returns:
        The last ``PGresult`` of each statement, in order.

    Raises:
        psycopg.OperationalError: The connection broke.
    """
    from psycopg import pq

    pgconn.enter_pipeline_mode()
    try:
        for sql, values in statements:
            if values:
                pgconn.send_query_params(sql, values, param_types=[TIMESTAMPTZ_OID] * len(values))
            else:
                pgconn.send_query_params(sql, None)
        pgconn.pipeline_sync()
        results = _exchange(pgconn, len(statements), poll, pq)
    finally:
        if pgconn.pipeline_status != pq.PipelineStatus.OFF:
            # A broken connection may refuse even this: the caller drops it.
            with contextlib.suppress(Exception):
                pgconn.exit_pipeline_mode()
    return results


def _exchange(pgconn: Any, count: int, poll: float, pq: Any) -> list[Any]:
    """Flush what is queued and read results until the pipeline's sync point.

    The same loop as psycopg's own pipeline (send while reading, so neither side's
    buffer fills and blocks the other), with libpq's results kept as they come.
    """
    copying = (pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH)
    results: list[Any] = []
    current: Any = None
    synced = False
    with selectors.DefaultSelector() as selector:
        fileno = pgconn.socket
        selector.register(fileno, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while not synced:
            pending = pgconn.flush()  # 0: everything sent
            selector.modify(
                fileno, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            )
            if not selector.select(poll):
                continue
            pgconn.consume_input()
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:
                    if current is None:
                        break  # nothing more until more input arrives
                    results.append(current)  # the end of one statement's results
                    current = None
                elif result.status == pq.ExecStatus.PIPELINE_SYNC:
                    synced = True
                    break
                elif result.status in copying:
                    raise _error("COPY cannot be used in a pipeline")
                else:
                    current = result
    if len(results) != count:
        raise _error(f"expected {count} results from the pipeline, got {len(results)}")
    return results


def _error(message: str) -> Exception:
    import psycopg

    return psycopg.OperationalError(message)
