"""Engines for the SQL source: one pool per connection, sessions that start clean.

PostgreSQL sessions open read-only with the connection's statement timeout as their
defaults, send every statement with the extended query protocol (so the server itself
refuses a second statement after a ``;``), and are cleaned when they go back to the pool:
the transaction is rolled back (which undoes every ``SET`` and ``set_config``) and what a
rollback does not undo (session advisory locks, ``LISTEN``, prepared statements) is
released, so nothing one KR did reaches the next use of the connection. MySQL and MariaDB
sessions release their named locks the same way.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState, QueuePool
from sqlalchemy.util import queue as sa_queue

from okr_pipeline.okr_core.settings import ConnectionSettings

__all__ = [
    "LanePool",
    "close_idle_connection",
    "create_engine",
    "end_transaction",
    "ms",
    "rollback",
    "run_fixed",
    "session_timeout",
    "url_secrets",
]

# Run after the rollback, in one round trip: what survives a rollback in a PostgreSQL
# session. (DISCARD ALL would also do, but cannot share a message with other statements.)
_PG_CLEANUP = b"SELECT pg_advisory_unlock_all(); UNLISTEN *; DEALLOCATE ALL"
_CLEAN = "okr_session_clean"  # connection info key: this use already cleaned the session
_MYSQL_MULTI_STATEMENTS = 1 << 16  # CLIENT.MULTI_STATEMENTS


class LanePool(QueuePool):
    """SQLAlchemy's queue pool, able to close one idle connection when a lane ends.

    A run's lanes each hold one slot of the connection's limit and one connection at a
    time; when a lane ends, :func:`close_idle_connection` closes one idle connection
    before its slot goes back, so the connections open never outnumber the slots held.
    """

    def close_idle(self) -> bool:
        """Close one idle connection of the pool, if there is one.

        Returns:
            True when one was closed.
        """
        try:
            # Taken off the queue atomically: no other thread can check it out meanwhile.
            record = self._pool.get(False)
        except sa_queue.Empty:
            return False
        try:
            record.close()
        finally:
            # As QueuePool does for a connection it will not keep: the pool may open
            # another one later, up to its size.
            self._dec_overflow()
        return True


def close_idle_connection(engine: Engine) -> bool:
    """Close one idle pooled connection of ``engine`` (a :class:`LanePool`), if any.

    Args:
        engine: An engine made by :func:`create_engine`.

    Returns:
        True when one was closed; False when none was idle or the pool keeps none.
    """
    pool = engine.pool
    return pool.close_idle() if isinstance(pool, LanePool) else False


def create_engine(settings: ConnectionSettings) -> Engine:
    """Create the engine (and its pool) for one named connection.

    Args:
        settings: The connection's URL, timeout and concurrency bound.

    Returns:
        An engine whose pool is as large as the connection's ``max_concurrency``.
    """
    url = make_url(settings.url.get_secret_value())
    backend = url.get_backend_name()
    timeout = settings.timeout_seconds
    connect_args: dict[str, Any] = {}
    forced: dict[str, Any] = {}  # kept even when the URL sets the option
    if backend == "postgresql":
        connect_args["connect_timeout"] = max(2, math.ceil(timeout))  # libpq minimum is 2
        # Read-only and the statement timeout as the session's defaults, set when the
        # connection opens: a query then costs no extra round trip (see read_only).
        connect_args["options"] = (
            f"-c default_transaction_read_only=on -c statement_timeout={ms(timeout)}"
        )
        if url.get_driver_name() == "psycopg":
            forced["cursor_factory"] = _extended_protocol_cursor()
            # No server-side prepared statements: a KR's query runs once per run, and
            # the pool's cleanup deallocates them all (psycopg would believe them there).
            forced["prepare_threshold"] = None
    elif backend in {"mysql", "mariadb"}:
        connect_args["connect_timeout"] = max(1, math.ceil(timeout))
        if "client_flag" in url.query:
            # A URL asking for multi-statement queries does not get them.
            flag = int(str(url.query["client_flag"])) | 2  # CLIENT.FOUND_ROWS, as SQLAlchemy
            forced["client_flag"] = flag & ~_MYSQL_MULTI_STATEMENTS
    elif backend == "sqlite":
        connect_args["timeout"] = timeout  # how long to wait for a lock held by a writer
    # Options written in the URL win over our defaults.
    connect_args = {k: v for k, v in connect_args.items() if k not in url.query} | forced
    # No pre-ping: it costs a round trip per query. A connection that died is detected
    # when used, SQLAlchemy then drops the whole pool, and fetch() retries once.
    kwargs: dict[str, Any] = {"connect_args": connect_args}
    in_memory = backend == "sqlite" and url.database in (None, "", ":memory:")
    if not in_memory:
        # Pool as large as the connection's concurrency bound: more would sit idle, fewer
        # would make allowed queries wait for a connection. Lanes close what they leave
        # idle when they end (LanePool), so it holds no more than the slots a run holds.
        kwargs.update(
            poolclass=LanePool,
            pool_size=settings.max_concurrency,
            max_overflow=0,
            pool_timeout=max(timeout, 1.0),
        )
    try:
        engine = sa.create_engine(url, **kwargs)
    except TypeError:
        # A dialect whose pool takes no size (e.g. NullPool): accept its default.
        for key in ("poolclass", "pool_size", "max_overflow", "pool_timeout"):
            kwargs.pop(key, None)
        engine = sa.create_engine(url, **kwargs)
    if backend == "postgresql":
        event.listen(engine, "reset", _reset_postgresql_session)
    elif backend in {"mysql", "mariadb"}:
        event.listen(engine, "reset", _reset_mysql_session)
    return engine


@lru_cache(maxsize=1)
def _extended_protocol_cursor() -> type[Any]:
    import psycopg  # optional driver: imported when a URL names it

    class ExtendedProtocolCursor(psycopg.Cursor[Any]):
        """A cursor that never uses the simple query protocol.

        psycopg sends a statement without parameters as a simple query, which may hold
        several statements; the extended protocol allows one, refused by the server
        otherwise ("cannot insert multiple commands into a prepared statement").
        """

        # psycopg has no public switch for this: its own streaming path passes
        # force_extended here (psycopg 3.1 to 3.3). If a release renamed it, this would be
        # ignored and the statement check alone would stand; the test
        # test_the_extended_protocol_refuses_a_second_statement would say so.
        def _execute_send(
            self, query: Any, *, force_extended: bool = False, binary: bool | None = None
        ) -> None:
            super()._execute_send(query, force_extended=True, binary=binary)

    return ExtendedProtocolCursor


def end_transaction(conn: Connection) -> None:
    """Roll back the connection's transaction and clean its session for the next use.

    On PostgreSQL through psycopg the rollback and the cleanup go in one round trip, and
    the pool is told not to clean again; elsewhere this is a plain rollback (the pool's
    reset then cleans a PostgreSQL session).

    Args:
        conn: A connection whose transaction must never be committed.
    """
    try:
        pooled = conn.connection
        raw = pooled.driver_connection
        if conn.dialect.name == "postgresql" and hasattr(raw, "pgconn"):
            _clean_postgresql(raw, in_transaction=True)
            pooled.info[_CLEAN] = True
            return
    except Exception:  # noqa: BLE001 - whatever failed, the connection must not be reused
        conn.invalidate()
        return
    rollback(conn)


def run_fixed(conn: Connection, statement: str) -> None:
    """Run a fixed statement of ours (no parameters, no result) at the least cost.

    Through psycopg it goes straight to libpq, skipping the cursor machinery that a KR's
    query needs: on a batch's hot path (the rollback after every KR) that is most of the
    client's time.

    Args:
        conn: The connection.
        statement: The SQL, written in this package (never a KR's text).

    Raises:
        sqlalchemy.exc.DBAPIError: The database refused it.
    """
    raw: Any = conn.connection.driver_connection
    if not hasattr(raw, "pgconn"):
        conn.exec_driver_sql(statement)
        return
    with raw.lock:
        result = raw.pgconn.exec_(statement.encode())
    if result.error_message:
        message = result.error_message.decode(errors="replace").strip()
        raise sa_exc.OperationalError(statement, None, RuntimeError(message))


def rollback(conn: Connection) -> None:
    """Roll back, or drop the connection when even that fails.

    Args:
        conn: The connection.
    """
    try:
        conn.rollback()
    except sa_exc.DBAPIError:
        conn.invalidate()


def _reset_postgresql_session(
    dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState
) -> None:
    # The pool's "reset" hook, before its own rollback: clean what this use left behind,
    # unless end_transaction() already did. An exception here makes the pool drop the
    # connection rather than hand it out unclean.
    if record.info.pop(_CLEAN, False) or state.terminate_only:
        return
    if hasattr(dbapi_connection, "pgconn"):
        idle = dbapi_connection.pgconn.transaction_status == 0  # PQTRANS_IDLE
        _clean_postgresql(dbapi_connection, in_transaction=not idle)
        return
    # Another driver: rollback first, then the same statements one by one.
    dbapi_connection.rollback()
    cursor = dbapi_connection.cursor()
    try:
        for statement in _PG_CLEANUP.decode().split("; "):
            cursor.execute(statement)
    finally:
        cursor.close()
    dbapi_connection.rollback()


def _reset_mysql_session(
    dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState
) -> None:
    # Named locks (GET_LOCK, reachable from a stored function) belong to the session, not
    # the transaction: release them before another KR gets this connection. Servers
    # without RELEASE_ALL_LOCKS (MySQL before 5.7) fail here and the pool drops the
    # connection instead, which is also clean.
    if state.terminate_only:
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("DO RELEASE_ALL_LOCKS()")
    finally:
        cursor.close()
    dbapi_connection.rollback()


def _clean_postgresql(raw: Any, *, in_transaction: bool) -> None:
    # One simple-protocol message of fixed text: the only multi-statement string this
    # source ever sends, and it carries nothing from a KR.
    message = (b"ROLLBACK; " if in_transaction else b"") + _PG_CLEANUP
    with raw.lock:
        result = raw.pgconn.exec_(message)
    if result.error_message:
        raise sa_exc.InvalidRequestError(
            f"could not clean the database session: {result.error_message.decode(errors='replace')}"
        )


def ms(seconds: float) -> int:
    """Seconds as whole milliseconds, at least 1 (a timeout of 0 would mean none).

    Args:
        seconds: A duration.

    Returns:
        Milliseconds.
    """
    return max(1, int(seconds * 1000))


def session_timeout(engine: Engine, settings: ConnectionSettings) -> float | None:
    """The timeout PostgreSQL sessions of this engine open with, if ours are in place.

    Args:
        engine: The connection's engine.
        settings: Its settings.

    Returns:
        The connection's timeout in seconds; None when not PostgreSQL or the URL brought
        its own ``options``.
    """
    if engine.dialect.name != "postgresql" or "options" in engine.url.query:
        return None
    return settings.timeout_seconds


@lru_cache(maxsize=256)
def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a connection URL holds, for redaction.

    Args:
        url: The connection URL.

    Returns:
        The password, if any.
    """
    try:
        password = make_url(url).password
    except sa_exc.ArgumentError:
        return ()
    return (str(password),) if password else ()
