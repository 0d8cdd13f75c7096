"""Many KRs' queries in one PostgreSQL read-only transaction, each from a clean state.

One query per KR costs three round trips on its own (BEGIN, query, ROLLBACK). Here the
queries of a batch share one read-only transaction, and each runs after a savepoint that
is rolled back to once it is done, whatever it did: every setting it changed
(``set_config``, ``SET LOCAL`` inside a function, a failed statement) is undone before the
next KR runs, and the transaction is never committed. What a rollback does not undo
(session advisory locks, ``LISTEN``) is released when the connection goes back to the
pool (:mod:`connectors.sql_engine`). Through psycopg every query of the batch and the
rollback after it are sent at once (pipeline mode), so a batch costs one round trip while
no query error gets in the way; with other drivers a KR costs two.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from okr_pipeline.connectors import sql_guard
from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError, SourceError
from okr_pipeline.connectors.sql_engine import end_transaction, run_fixed, url_secrets
from okr_pipeline.connectors.sql_errors import db_error
from okr_pipeline.connectors.sql_session import (
    MAX_ROWS_COUNTED,
    StaleConnection,
    driver_sql,
    no_result_set,
    params,
    single_value,
    value_of,
)
from okr_pipeline.okr_core.redaction import Redactor
from okr_pipeline.okr_core.settings import ConnectionSettings

if TYPE_CHECKING:
    from okr_pipeline.connectors.sql import SqlSourceConfig

__all__ = ["in_one_transaction"]

_SAVEPOINT = "SAVEPOINT okr_kr"
_BACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT okr_kr"  # the savepoint stays, for the next KR
_Outcome = Decimal | Exception | None


def in_one_transaction(
    engine: Engine,
    settings: ConnectionSettings,
    items: Sequence[tuple[SqlSourceConfig, SourceContext]],
) -> list[_Outcome]:
    """Run KRs' queries in one read-only transaction, each isolated from the others.

    Args:
        engine: A PostgreSQL engine whose sessions open read-only with the connection's
            timeout (``sql_engine.session_timeout`` is not None).
        settings: The connection's settings.
        items: ``(config, context)`` pairs on that connection, with its timeout.

    Returns:
        One entry per item: the value, None for no data, or the error it raised.
    """
    redact = Redactor(url_secrets(settings.url.get_secret_value()))
    timeout = settings.timeout_seconds
    results: list[_Outcome] = []
    reconnected = False
    while len(results) < len(items):
        try:
            with engine.connect() as conn:
                try:
                    _savepoint(conn)
                    raw: Any = conn.connection.driver_connection
                    pipelined = hasattr(raw, "pgconn") and _pipeline_supported()
                    while len(results) < len(items):
                        rest = items[len(results) :]
                        if pipelined:
                            results.extend(_pipelined(conn, raw, rest, timeout, redact))
                        else:
                            results.append(_one(conn, *rest[0], timeout, redact))
                finally:
                    end_transaction(conn)  # never commit; clean the session
        except StaleConnection as stale:
            if reconnected:
                _fail_rest(results, items, stale.error, timeout, redact)
            # A pooled connection the server dropped: SQLAlchemy discarded the pool;
            # the rest of the batch gets a new one, once.
            reconnected = True
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
            # Could not get a connection: every KR left in the batch fails with it.
            _fail_rest(results, items, exc, timeout, redact)
    return results


def _where(config: SqlSourceConfig, ctx: SourceContext) -> str:
    return f"KR {ctx.kr_ref}: sql source on connection {config.connection!r}"


def _one(
    conn: Connection,
    config: SqlSourceConfig,
    ctx: SourceContext,
    timeout: float,
    redact: Redactor,
) -> _Outcome:
    # One KR, two round trips (its query, then the rollback to the savepoint): drivers
    # without pipeline mode.
    where = _where(config, ctx)
    try:
        sql_guard.check_query(config.query)
    except sql_guard.UnsafeQueryError as exc:
        return FatalSourceError(f"{where}: {exc}")
    outcome: _Outcome
    try:
        result = conn.exec_driver_sql(
            driver_sql(config.query, conn.dialect), params(config.query, ctx)
        )
        outcome = single_value(result, config.column, where)
    except SourceError as exc:
        outcome = exc
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise StaleConnection(exc) from exc
        outcome = db_error(exc, False, timeout, where, redact)
    _back_to_savepoint(conn)
    return outcome


def _pipelined(
    conn: Connection,
    raw: Any,
    items: Sequence[tuple[SqlSourceConfig, SourceContext]],
    timeout: float,
    redact: Redactor,
) -> list[_Outcome]:
    """Send the KRs' queries, each followed by the rollback to the savepoint, at once.

    psycopg's pipeline mode sends every message of the batch before reading the first
    answer, so the batch costs one round trip instead of one per KR; each KR still runs
    after the rollback that undid the previous one. A failed query makes the server skip
    what follows it until the end of the pipeline: its KR gets its error, the savepoint
    is restored, and the outcomes up to it are returned (the caller sends the rest again).

    Returns:
        The outcomes of the first items (at least one), in order.
    """
    import psycopg  # the driver of this connection, so installed

    outcomes: list[_Outcome] = [None] * len(items)
    sent: list[tuple[int, Any, str, dict[str, Any]]] = []  # (index, cursor, sql, params)
    failure: psycopg.Error | None = None
    back = raw.cursor()  # runs every rollback; its results are never read
    try:
        try:
            with raw.pipeline():
                for index, (config, ctx) in enumerate(items):
                    try:
                        sql_guard.check_query(config.query)
                    except sql_guard.UnsafeQueryError as exc:
                        outcomes[index] = FatalSourceError(f"{_where(config, ctx)}: {exc}")
                        continue  # never sent: the session is untouched
                    sql = driver_sql(config.query, conn.dialect)
                    bound = params(config.query, ctx)
                    cursor = raw.cursor()
                    sent.append((index, cursor, sql, bound))
                    try:
                        cursor.execute(sql, bound)
                        back.execute(_BACK_TO_SAVEPOINT)
                    except psycopg.Error as exc:
                        # An earlier query's error, read while sending: stop sending.
                        failure = exc
                        break
        except psycopg.Error as exc:
            failure = failure or exc
        if failure is None:
            for index, cursor, _, _ in sent:
                outcomes[index] = _value(cursor, *items[index])
            return outcomes
        return _up_to_failure(conn, raw, items, outcomes, sent, failure, timeout, redact)
    finally:
        for _, cursor, _, _ in sent:
            cursor.close()
        back.close()


def _value(cursor: Any, config: SqlSourceConfig, ctx: SourceContext) -> _Outcome:
    where = _where(config, ctx)
    if cursor.description is None:
        return no_result_set(where)
    columns = [description.name for description in cursor.description]
    try:
        return value_of(columns, cursor.fetchmany(MAX_ROWS_COUNTED + 1), config.column, where)
    except SourceError as exc:
        return exc


def _up_to_failure(
    conn: Connection,
    raw: Any,
    items: Sequence[tuple[SqlSourceConfig, SourceContext]],
    outcomes: list[_Outcome],
    sent: Sequence[tuple[int, Any, str, dict[str, Any]]],
    failure: Exception,
    timeout: float,
    redact: Redactor,
) -> list[_Outcome]:
    """The outcomes up to the KR whose query failed (the first sent without a result)."""
    import psycopg

    failed = next((entry for entry in sent if entry[1].pgresult is None), None)
    if failed is None:
        # Every query answered: a rollback to the savepoint failed, so the session
        # cannot be trusted; this batch runs again on a new connection.
        error = sa_exc.DBAPIError.instance(
            _BACK_TO_SAVEPOINT, None, failure, psycopg.Error, connection_invalidated=True
        )
        conn.invalidate()
        raise StaleConnection(error) from failure  # type: ignore[arg-type]
    index, cursor, sql, bound = failed
    for before, done, _, _ in sent:
        if before >= index:
            break
        outcomes[before] = _value(done, *items[before])
    caught: Any = failure
    invalidated = conn.dialect.is_disconnect(caught, raw, cursor)
    error = sa_exc.DBAPIError.instance(
        sql, bound, failure, psycopg.Error, connection_invalidated=invalidated
    )
    if not isinstance(error, sa_exc.DBAPIError):
        raise failure
    if invalidated:
        conn.invalidate()
        raise StaleConnection(error) from failure
    # The failed query left the transaction aborted: back to the savepoint first.
    _back_to_savepoint(conn)
    outcomes[index] = db_error(error, False, timeout, _where(*items[index]), redact)
    return outcomes[: index + 1]


@lru_cache(maxsize=1)
def _pipeline_supported() -> bool:
    import psycopg  # reached only with a psycopg connection

    return bool(psycopg.Pipeline.is_supported())  # libpq 14 or later


def _back_to_savepoint(conn: Connection) -> None:
    try:
        # Whatever the query did to the session (settings, a failed statement) is undone
        # before the next KR runs.
        run_fixed(conn, _BACK_TO_SAVEPOINT)
    except sa_exc.DBAPIError as exc:
        # The connection cannot be trusted to be clean: this KR and the rest run again
        # on a new one.
        conn.invalidate()
        raise StaleConnection(exc) from exc


def _savepoint(conn: Connection) -> None:
    try:
        conn.exec_driver_sql(_SAVEPOINT)  # through SQLAlchemy: it notices a dead connection
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise StaleConnection(exc) from exc
        raise


def _fail_rest(
    results: list[_Outcome],
    items: Sequence[tuple[SqlSourceConfig, SourceContext]],
    exc: sa_exc.DBAPIError | sa_exc.TimeoutError,
    timeout: float,
    redact: Redactor,
) -> None:
    for config, ctx in items[len(results) :]:
        where = f"KR {ctx.kr_ref}: sql source on connection {config.connection!r}"
        results.append(
            db_error(exc, False, timeout, where, redact)
            if isinstance(exc, sa_exc.DBAPIError)
            else RetriableSourceError(f"{where}: no free database connection")
        )
