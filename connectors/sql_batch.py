"""Many KRs' queries in one PostgreSQL read-only transaction, each from a clean state.

One query per KR costs three round trips on its own (BEGIN, query, ROLLBACK). Here the
queries of a batch share one read-only transaction, and each runs after a savepoint that
is rolled back to once it is done, whatever it did: every setting it changed
(``set_config``, ``SET LOCAL`` inside a function, a failed statement) is undone before the
next KR runs, and the transaction is never committed. What a rollback does not undo
(session advisory locks, ``LISTEN``) is released when the connection goes back to the
pool (:mod:`connectors.sql_engine`). Through psycopg the query and the rollback to the
savepoint travel together (pipeline mode), so a KR costs one round trip; with other
drivers, two.
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
                    for config, ctx in items[len(results) :]:
                        results.append(_one(conn, config, ctx, timeout, redact))
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


def _one(
    conn: Connection,
    config: SqlSourceConfig,
    ctx: SourceContext,
    timeout: float,
    redact: Redactor,
) -> _Outcome:
    where = f"KR {ctx.kr_ref}: sql source on connection {config.connection!r}"
    try:
        sql_guard.check_query(config.query)
    except sql_guard.UnsafeQueryError as exc:
        return FatalSourceError(f"{where}: {exc}")
    raw: Any = conn.connection.driver_connection
    if hasattr(raw, "pgconn") and _pipeline_supported():
        return _one_pipelined(conn, raw, config, ctx, timeout, where, redact)
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


def _one_pipelined(
    conn: Connection,
    raw: Any,
    config: SqlSourceConfig,
    ctx: SourceContext,
    timeout: float,
    where: str,
    redact: Redactor,
) -> _Outcome:
    # psycopg's pipeline mode sends the query and the rollback to the savepoint together
    # and reads both answers in one round trip: the isolation of KRs costs no extra wait.
    import psycopg  # the driver of this connection, so installed

    sql = driver_sql(config.query, conn.dialect)
    bound = params(config.query, ctx)
    cursor = raw.cursor()
    try:
        try:
            with raw.pipeline():
                cursor.execute(sql, bound)
                raw.execute(_BACK_TO_SAVEPOINT)
        except psycopg.Error as exc:
            caught: Any = exc
            invalidated = conn.dialect.is_disconnect(caught, raw, cursor)
            error = sa_exc.DBAPIError.instance(
                sql, bound, exc, psycopg.Error, connection_invalidated=invalidated
            )
            if not isinstance(error, sa_exc.DBAPIError):
                raise
            if invalidated:
                conn.invalidate()
                raise StaleConnection(error) from exc
            # A failed query aborted the pipeline before its rollback: roll back now.
            _back_to_savepoint(conn)
            return db_error(error, False, timeout, where, redact)
        if cursor.description is None:
            return no_result_set(where)
        columns = [description.name for description in cursor.description]
        return value_of(columns, cursor.fetchmany(MAX_ROWS_COUNTED + 1), config.column, where)
    except SourceError as exc:
        return exc
    finally:
        cursor.close()


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
