"""SQL metric source: one read-only query against any database SQLAlchemy reaches.

The query must return exactly one row with one number (or a column named ``value``, or the
column named by ``column``). It runs read-only with a statement timeout, in a transaction
that is always rolled back, so a source can never change the warehouse it reads.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field, field_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect, Engine, make_url

from connectors.base import BaseSource, BaseSourceConfig, SourceContext
from connectors.errors import FatalSourceError, RetriableSourceError, SourceError
from connectors.redaction import Redactor, truncate
from connectors.sql_errors import db_error
from connectors.values import NotANumberError, to_decimal
from okr_core.settings import ConnectionSettings

__all__ = ["BIND_PARAMETERS", "SqlSource", "SqlSourceConfig"]

BIND_PARAMETERS = ("as_of", "cycle_start", "cycle_end")
MAX_ROWS_COUNTED = 1000


class SqlSourceConfig(BaseSourceConfig):
    """A SQL query returning the KR's current value."""

    type: Literal["sql"] = Field(description="Source type: a SQL query.")
    connection: str = Field(
        min_length=1,
        description="Name of a connection in the settings (OKR_CONNECTIONS__<NAME>__URL).",
    )
    query: str = Field(
        min_length=1,
        description=(
            "One SELECT returning one row. May use the bind parameters :as_of, :cycle_start "
            "and :cycle_end (UTC timestamps; timezone-aware on PostgreSQL, naive UTC elsewhere)."
        ),
    )
    column: str | None = Field(
        None,
        min_length=1,
        description="Column holding the value; default: the only column, or one named 'value'.",
    )
    timeout_seconds: float | None = Field(
        None, gt=0, le=3600, description="Statement timeout; default: the connection's."
    )

    @field_validator("query")
    @classmethod
    def _known_parameters(cls, query: str) -> str:
        cast = re.search(r"(?<![:\w]):(as_of|cycle_start|cycle_end)::", query)
        if cast:
            raise ValueError(
                f"':{cast[1]}::' is read as text, not as a parameter; write "
                f"CAST(:{cast[1]} AS <type>) instead"
            )
        unknown = _bind_names(query) - set(BIND_PARAMETERS)
        if unknown:
            names = ", ".join(f":{n}" for n in sorted(unknown))
            valid = ", ".join(f":{n}" for n in BIND_PARAMETERS)
            raise ValueError(
                f"unknown bind parameter {names}. Valid: {valid}. Write a literal colon as '\\:'"
            )
        return query

    def connection_names(self) -> set[str]:
        """The one connection this query runs on.

        Returns:
            ``{connection}``.
        """
        return {self.connection}

    def concurrency_key(self) -> str:
        """Queries on one connection share its bound.

        Returns:
            ``"sql:<connection>"``.
        """
        return f"sql:{self.connection}"


# The pattern SQLAlchemy's text() uses to find bind parameters (TextClause): it skips
# '::' casts and '\:' escapes. Matching it here costs microseconds where compiling the
# statement to ask SQLAlchemy costs ~0.1 ms, which adds up over 10,000 KRs a run; a test
# checks that both agree.
_BIND_PARAM = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])", re.UNICODE)


@lru_cache(maxsize=65536)  # sized for every query of a large company (thousands of KRs)
def _bind_names(query: str) -> frozenset[str]:
    return frozenset(_BIND_PARAM.findall(query))


class SqlSource(BaseSource[SqlSourceConfig]):
    """Runs a read-only SQL query returning one number, on any SQLAlchemy database.

    Args:
        env: Connections and secrets of this run.
    """

    type_name = "sql"
    config_model = SqlSourceConfig
    max_batch = 50

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def fetch(self, config: SqlSourceConfig, ctx: SourceContext) -> Decimal | None:
        """Run the query and return its single value.

        Args:
            config: The validated SQL source config.
            ctx: As-of time, cycle bounds (bound as :as_of, :cycle_start, :cycle_end) and
                the KR reference for messages.

        Returns:
            The value as an exact Decimal, or None when it is NULL or NaN.

        Raises:
            RetriableSourceError: Connection failure, timeout, lock or deadlock.
            FatalSourceError: Bad SQL, a write attempt, or not exactly one numeric value.
        """
        where = f"KR {ctx.kr_ref}: sql source on connection {config.connection!r}"
        settings = self.env.connections.get(config.connection)
        if settings is None:
            known = ", ".join(sorted(self.env.connections)) or "none"
            raise FatalSourceError(
                f"{where}: unknown connection {config.connection!r}. Known connections: {known}."
            )
        url = settings.url.get_secret_value()
        redact = Redactor(_url_secrets(url))
        timeout = config.timeout_seconds or settings.timeout_seconds
        try:
            engine = self._engine(config.connection, settings)
            try:
                return self._run(engine, config, ctx, timeout, settings, where, redact)
            except _StaleConnection:
                # The pool held connections the server dropped (a restart, an idle
                # timeout); SQLAlchemy has discarded them, so one more try gets a fresh one.
                return self._run(engine, config, ctx, timeout, settings, where, redact)
        except _StaleConnection as exc:
            raise db_error(exc.error, False, timeout, where, redact) from exc.error
        except SourceError:
            raise
        except sa_exc.DBAPIError as exc:
            # Raised while connecting or preparing the session, before the query ran.
            raise db_error(exc, False, timeout, where, redact) from exc
        except sa_exc.TimeoutError as exc:
            raise RetriableSourceError(
                f"{where}: no free database connection within {timeout:g}s "
                f"(max_concurrency={settings.max_concurrency})"
            ) from exc
        except (sa_exc.SQLAlchemyError, ImportError, ValueError, TypeError) as exc:
            # Bad URL, missing driver, unsupported option: retrying will not help.
            raise FatalSourceError(
                f"{where}: {type(exc).__name__}: {truncate(redact(str(exc)))}"
            ) from exc

    def fetch_many(
        self, items: Sequence[tuple[SqlSourceConfig, SourceContext]]
    ) -> list[Decimal | Exception | None]:
        """Run several KRs' queries; on PostgreSQL over one connection and transaction.

        One query per KR costs three round trips on its own (BEGIN, query, ROLLBACK); here
        the queries of a batch share one read-only transaction, so a KR costs one. A query
        that fails, or returns the wrong shape, is followed by a rollback before the next
        one runs, so nothing it did (a failed statement, a SET) reaches the other KRs; the
        transaction is never committed. Elsewhere, and for KRs with their own timeout, each
        query runs on its own as in :meth:`fetch`.

        Args:
            items: ``(config, context)`` pairs, all on one connection.

        Returns:
            One entry per item: the value, None for no data, or the error it raised.
        """
        shared = self._shared_engine(items)
        if shared is None:
            return super().fetch_many(items)
        engine, settings = shared
        alone = [
            i
            for i, (config, _) in enumerate(items)
            if config.connection != items[0][0].connection
            or _ms(config.timeout_seconds or settings.timeout_seconds)
            != _ms(settings.timeout_seconds)
        ]
        alone_set = set(alone)
        together = [i for i in range(len(items)) if i not in alone_set]
        results: list[Decimal | Exception | None] = [None] * len(items)
        for i, outcome in zip(alone, super().fetch_many([items[i] for i in alone]), strict=True):
            results[i] = outcome
        outcomes = self._in_one_transaction(engine, settings, [items[i] for i in together])
        for i, outcome in zip(together, outcomes, strict=True):
            results[i] = outcome
        return results

    def _shared_engine(
        self, items: Sequence[tuple[SqlSourceConfig, SourceContext]]
    ) -> tuple[Engine, ConnectionSettings] | None:
        # Batching needs PostgreSQL sessions opened read-only with our timeout.
        if len(items) < 2:
            return None
        settings = self.env.connections.get(items[0][0].connection)
        if settings is None:
            return None
        try:
            engine = self._engine(items[0][0].connection, settings)
        except Exception:  # noqa: BLE001 - fetch() reports it, KR by KR
            return None
        if _session_timeout(engine, settings) is None:
            return None
        return engine, settings

    def _in_one_transaction(
        self,
        engine: Engine,
        settings: ConnectionSettings,
        items: Sequence[tuple[SqlSourceConfig, SourceContext]],
    ) -> list[Decimal | Exception | None]:
        redact = Redactor(_url_secrets(settings.url.get_secret_value()))
        timeout = settings.timeout_seconds
        results: list[Decimal | Exception | None] = []
        reconnected = False
        while len(results) < len(items):
            try:
                with engine.connect() as conn:
                    try:
                        for config, ctx in items[len(results) :]:
                            where = (
                                f"KR {ctx.kr_ref}: sql source on connection {config.connection!r}"
                            )
                            try:
                                result = conn.exec_driver_sql(
                                    _driver_sql(config.query, engine.dialect),
                                    _params(config.query, ctx),
                                )
                                results.append(_single_value(result, config, where))
                                continue
                            except SourceError as exc:
                                results.append(exc)
                            except sa_exc.DBAPIError as exc:
                                if exc.connection_invalidated and not reconnected:
                                    # A pooled connection the server dropped: SQLAlchemy
                                    # discarded the pool; the rest of the batch gets a new one.
                                    reconnected = True
                                    raise _StaleConnection(exc) from exc
                                results.append(db_error(exc, False, timeout, where, redact))
                            _rollback(conn)  # undo the failed KR before the next one runs
                    finally:
                        _rollback(conn)  # never commit
            except _StaleConnection:
                continue
            except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
                # Could not get a connection: every KR left in the batch fails with it.
                for config, ctx in items[len(results) :]:
                    where = f"KR {ctx.kr_ref}: sql source on connection {config.connection!r}"
                    error: Exception = (
                        db_error(exc, False, timeout, where, redact)
                        if isinstance(exc, sa_exc.DBAPIError)
                        else RetriableSourceError(f"{where}: no free database connection")
                    )
                    results.append(error)
        return results

    def _run(
        self,
        engine: Engine,
        config: SqlSourceConfig,
        ctx: SourceContext,
        timeout: float,
        settings: ConnectionSettings,
        where: str,
        redact: Redactor,
    ) -> Decimal | None:
        stmt = _statement(config.query, ctx, engine.dialect)
        session_timeout = _session_timeout(engine, settings)
        with engine.connect() as conn, _read_only(conn, timeout, session_timeout) as timed_out:
            try:
                result = conn.execute(stmt)
                return _single_value(result, config, where)
            except sa_exc.DBAPIError as exc:
                if exc.connection_invalidated:
                    raise _StaleConnection(exc) from exc
                raise db_error(exc, timed_out(), timeout, where, redact) from exc

    def close(self) -> None:
        """Dispose every engine this source created."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.dispose()

    def _engine(self, name: str, settings: ConnectionSettings) -> Engine:
        engine = self._engines.get(name)
        if engine is not None:
            return engine
        # One engine (one pool) per connection: creating two under a race would double
        # the connections the database sees, so creation is serialised.
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = _create_engine(settings)
                self._engines[name] = engine
            return engine

    def __repr__(self) -> str:
        return f"SqlSource(engines={sorted(self._engines)}, env={self.env!r})"


@lru_cache(maxsize=65536)
def _driver_sql(query: str, dialect: Dialect) -> str:
    # Compiling text() on every execution is most of SQLAlchemy's cost per query, and a
    # KR's query never changes: compile it once to the driver's own SQL (":as_of" becomes
    # "%(as_of)s", a literal "%" is doubled) and run that with exec_driver_sql().
    return str(sa.text(query).compile(dialect=dialect))


def _params(query: str, ctx: SourceContext, *, aware: bool = True) -> dict[str, datetime]:
    """The times a query binds, in UTC: aware, or naive where the database keeps no zone."""
    values = {"as_of": ctx.as_of, "cycle_start": ctx.cycle_start, "cycle_end": ctx.cycle_end}
    params = {name: values[name].astimezone(UTC) for name in _bind_names(query)}
    if not aware:
        params = {name: value.replace(tzinfo=None) for name, value in params.items()}
    return params


def _rollback(conn: Connection) -> None:
    try:
        conn.rollback()
    except sa_exc.DBAPIError:
        conn.invalidate()


class _StaleConnection(Exception):
    """A pooled connection turned out to be dead when used."""

    def __init__(self, error: sa_exc.DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _session_timeout(engine: Engine, settings: ConnectionSettings) -> float | None:
    # Our session defaults are in place unless the URL brought its own "options".
    if engine.dialect.name != "postgresql" or "options" in engine.url.query:
        return None
    return settings.timeout_seconds


@lru_cache(maxsize=256)
def _url_secrets(url: str) -> tuple[str, ...]:
    try:
        password = make_url(url).password
    except sa_exc.ArgumentError:
        return ()
    return (str(password),) if password else ()


def _create_engine(settings: ConnectionSettings) -> Engine:
    url = make_url(settings.url.get_secret_value())
    backend = url.get_backend_name()
    timeout = settings.timeout_seconds
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args["connect_timeout"] = max(2, math.ceil(timeout))  # libpq minimum is 2
        # Read-only and the statement timeout as the session's defaults, set when the
        # connection opens: a query then costs no extra round trip (see _read_only).
        connect_args["options"] = (
            f"-c default_transaction_read_only=on -c statement_timeout={_ms(timeout)}"
        )
    elif backend in {"mysql", "mariadb"}:
        connect_args["connect_timeout"] = max(1, math.ceil(timeout))
    elif backend == "sqlite":
        connect_args["timeout"] = timeout  # how long to wait for a lock held by a writer
    # Options written in the URL win over our defaults.
    connect_args = {k: v for k, v in connect_args.items() if k not in url.query}
    # No pre-ping: it costs a round trip per query. A connection that died is detected
    # when used, SQLAlchemy then drops the whole pool, and fetch() retries once.
    kwargs: dict[str, Any] = {"connect_args": connect_args}
    in_memory = backend == "sqlite" and url.database in (None, "", ":memory:")
    if not in_memory:
        # Pool as large as the connection's concurrency bound: more would sit idle, fewer
        # would make allowed queries wait for a connection.
        kwargs.update(
            pool_size=settings.max_concurrency, max_overflow=0, pool_timeout=max(timeout, 1.0)
        )
    try:
        return sa.create_engine(url, **kwargs)
    except TypeError:
        # A dialect whose pool takes no size (e.g. NullPool): accept its default.
        for key in ("pool_size", "max_overflow", "pool_timeout"):
            kwargs.pop(key, None)
        return sa.create_engine(url, **kwargs)


def _statement(query: str, ctx: SourceContext, dialect: Dialect) -> sa.TextClause:
    # Only PostgreSQL stores time zones reliably; elsewhere a naive UTC timestamp compares
    # correctly with naive UTC columns and is not mangled by the driver.
    aware = dialect.name == "postgresql"
    params = _params(query, ctx, aware=aware)
    return sa.text(query).bindparams(
        *(
            sa.bindparam(name, value, type_=sa.DateTime(timezone=aware))
            for name, value in sorted(params.items())
        )
    )


@contextmanager
def _read_only(
    conn: Connection, timeout: float, session_timeout: float | None = None
) -> Iterator[Callable[[], bool]]:
    """Make the connection's transaction read-only with a timeout; always roll back.

    Args:
        conn: The connection, before its first statement.
        timeout: The statement timeout for this query, in seconds.
        session_timeout: On PostgreSQL, the timeout the session was opened with (read-only
            by default too), or None when the session defaults were not set.

    Yields a function telling whether the SQLite deadline fired (other databases report
    their own timeouts with an error code).
    """
    dialect = conn.dialect.name
    fired = False
    raw: Any = None
    if dialect == "postgresql":
        # The session was opened read-only with the connection's timeout (_create_engine);
        # SET is transactional in PostgreSQL, so the rollback below undoes any SET a query
        # makes. Only a KR's own timeout needs a statement here.
        if session_timeout is None:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        if session_timeout is None or _ms(timeout) != _ms(session_timeout):
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {_ms(timeout)}")
    elif dialect in {"mysql", "mariadb"}:
        if getattr(conn.dialect, "is_mariadb", False):
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {timeout:.3f}")
        else:
            ms = max(1, int(timeout * 1000))
            conn.exec_driver_sql(f"SET SESSION max_execution_time = {ms}")
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
        _rollback(conn)


def _single_value(
    result: sa.CursorResult[Any], config: SqlSourceConfig, where: str
) -> Decimal | None:
    if not result.returns_rows:
        raise FatalSourceError(
            f"{where}: the query returned no result set; expected a SELECT returning one row"
        )
    columns = list(result.keys())
    rows = result.fetchmany(MAX_ROWS_COUNTED + 1)
    if len(rows) != 1:
        count = (
            "no"
            if not rows
            else (
                f"more than {MAX_ROWS_COUNTED}" if len(rows) > MAX_ROWS_COUNTED else str(len(rows))
            )
        )
        raise FatalSourceError(f"{where}: the query returned {count} rows; expected 1")
    index = _column_index(columns, config.column, where)
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
