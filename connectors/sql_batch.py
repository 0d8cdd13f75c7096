"""Many KRs' queries in one PostgreSQL read-only transaction, each from a clean state.

One query per KR costs three round trips on its own (BEGIN, query, ROLLBACK). Here the
queries of a batch share one read-only transaction, and each runs after a savepoint that
is rolled back to once it is done, whatever it did: every setting it changed
(``set_config``, ``SET LOCAL`` inside a function, a failed statement) is undone before the
next KR runs, and the transaction is never committed. What a rollback does not undo
(session advisory locks, ``LISTEN``) is released when the connection goes back to the
pool (:mod:`connectors.sql_engine`). Through psycopg every query of the batch and the
rollback after it are sent at once (pipeline mode, straight to libpq:
:mod:`connectors.sql_pipeline`), so a batch costs one round trip while no query error gets
in the way; with other drivers a KR costs two.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from okr_pipeline.connectors import sql_guard
from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError, SourceError
from okr_pipeline.connectors.sql_engine import end_transaction, run_fixed, url_secrets
from okr_pipeline.connectors.sql_errors import db_error
from okr_pipeline.connectors.sql_pipeline import Statement, numbered_sql, run_pipeline, timestamptz
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
_BEGIN: Statement = (b"BEGIN", None)  # read-only: the session opens so (sql_engine)
_SAVEPOINT_STATEMENT: Statement = (_SAVEPOINT.encode(), None)
_BACK_STATEMENT: Statement = (_BACK_TO_SAVEPOINT.encode(), None)
_FAILED = frozenset({5, 7, 11})  # libpq's BAD_RESPONSE, FATAL_ERROR, PIPELINE_ABORTED
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
                raw: Any = conn.connection.driver_connection
                try:
                    if hasattr(raw, "pgconn") and _pipeline_supported():
                        batch = _Pipelined(conn, raw, timeout, redact)
                        while len(results) < len(items):
                            results.extend(batch.run(items[len(results) :]))
                    else:
                        _savepoint(conn)
                        while len(results) < len(items):
                            results.append(_one(conn, *items[len(results)], timeout, redact))
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


class _Pipelined:
    """A batch's KRs on one psycopg connection, sent through libpq's pipeline mode.

    The first pipeline opens the transaction and its savepoint; every KR's query is
    followed by the rollback to that savepoint, and the whole batch (with the sync that
    ends it) costs one round trip (:mod:`connectors.sql_pipeline`).
    """

    def __init__(self, conn: Connection, raw: Any, timeout: float, redact: Redactor) -> None:
        from psycopg.adapt import Transformer  # the driver of this connection, so installed

        self.conn, self.raw, self.timeout, self.redact = conn, raw, timeout, redact
        self.encoding: str = raw.info.encoding
        self.loader = Transformer(raw)
        self.opened = False  # the transaction and its savepoint exist

    def run(self, items: Sequence[tuple[SqlSourceConfig, SourceContext]]) -> list[_Outcome]:
        """Send the KRs' queries, each followed by the rollback to the savepoint, at once.

        A failed query makes the server skip what follows it until the end of the
        pipeline: its KR gets its error, the savepoint is restored, and the outcomes up to
        it are returned (the caller sends the rest again).

        Returns:
            The outcomes of the first items (at least one), in order.
        """
        outcomes: list[_Outcome] = [None] * len(items)
        statements: list[Statement] = [] if self.opened else [_BEGIN, _SAVEPOINT_STATEMENT]
        sent: list[int] = []
        for index, (config, ctx) in enumerate(items):
            try:
                sql_guard.check_query(config.query)
            except sql_guard.UnsafeQueryError as exc:
                outcomes[index] = FatalSourceError(f"{_where(config, ctx)}: {exc}")
                continue  # never sent: the session is untouched
            sql, names = numbered_sql(config.query)
            bound = params(config.query, ctx)
            statements.append(
                (sql.encode(self.encoding), [timestamptz(bound[name]) for name in names])
            )
            statements.append(_BACK_STATEMENT)
            sent.append(index)
        if not sent:
            return outcomes
        results = self._exchange(statements)
        if not self.opened:
            opening, results = results[:2], results[2:]
            if any(result.status in _FAILED for result in opening):
                # BEGIN and SAVEPOINT fail only on a session in a bad state: not reused.
                message = opening[0].error_message or opening[1].error_message or b""
                self._drop(RuntimeError(message.decode(errors="replace").strip()))
            self.opened = True
        for position, index in enumerate(sent):
            query, back = results[2 * position], results[2 * position + 1]
            if query.status in _FAILED:
                # The failed query left the transaction aborted: back to the savepoint.
                _back_to_savepoint(self.conn)
                outcomes[index] = self._error(query, *items[index])
                return outcomes[: index + 1]
            if back.status in _FAILED:
                # The rollback to the savepoint failed: the session cannot be trusted, so
                # this KR and the rest run again on a new connection.
                self._drop(RuntimeError(_BACK_TO_SAVEPOINT))
            outcomes[index] = self._value(query, *items[index])
        return outcomes

    def _exchange(self, statements: list[Statement]) -> list[Any]:
        import psycopg

        try:
            with self.raw.lock:
                return run_pipeline(self.raw.pgconn, statements)
        except psycopg.Error as exc:
            # The connection broke, or the protocol went wrong: it cannot be reused.
            self._drop(exc)

    def _drop(self, cause: Exception) -> NoReturn:
        import psycopg

        error = sa_exc.DBAPIError.instance(
            None, None, cause, psycopg.Error, connection_invalidated=True
        )
        self.conn.invalidate()
        raise StaleConnection(error) from cause  # type: ignore[arg-type]

    def _error(self, result: Any, config: SqlSourceConfig, ctx: SourceContext) -> _Outcome:
        import psycopg
        from psycopg.errors import error_from_result

        failure = error_from_result(result, encoding=self.encoding)
        sql, _ = numbered_sql(config.query)
        error = sa_exc.DBAPIError.instance(sql, None, failure, psycopg.Error)
        if not isinstance(error, sa_exc.DBAPIError):
            return FatalSourceError(f"{_where(config, ctx)}: {failure}")
        return db_error(error, False, self.timeout, _where(config, ctx), self.redact)

    def _value(self, result: Any, config: SqlSourceConfig, ctx: SourceContext) -> _Outcome:
        from psycopg import pq

        where = _where(config, ctx)
        if result.status != pq.ExecStatus.TUPLES_OK:
            return no_result_set(where)
        columns = [(result.fname(i) or b"").decode(self.encoding) for i in range(result.nfields)]
        self.loader.set_pgresult(result)
        rows = self.loader.load_rows(0, min(result.ntuples, MAX_ROWS_COUNTED + 1), tuple)
        try:
            return value_of(columns, rows, config.column, where)
        except SourceError as exc:
            return exc


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
