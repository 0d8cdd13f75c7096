"""SQL metric source: one read-only query against any database SQLAlchemy reaches.

The query must return exactly one row with one number (or a column named ``value``, or the
column named by ``column``). It must be one query: :mod:`connectors.sql_guard` refuses
anything else when the file is validated and again before each fetch. It runs read-only
with a statement timeout, in a transaction that is always rolled back, on a session
cleaned before its next use, so a source can never change the warehouse it reads.

The work is split by role: ``sql_engine`` (engines, pools, session cleanup),
``sql_session`` (one query: binding, read-only transaction, reading the value),
``sql_batch`` (many KRs in one transaction), ``sql_errors`` (driver errors).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from okr_pipeline.connectors import sql_guard
from okr_pipeline.connectors.base import BaseSource, BaseSourceConfig, SourceContext
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError, SourceError
from okr_pipeline.connectors.sql_batch import in_one_transaction
from okr_pipeline.connectors.sql_engine import (
    close_idle_connection,
    create_engine,
    ms,
    session_timeout,
    url_secrets,
)
from okr_pipeline.connectors.sql_errors import db_error
from okr_pipeline.connectors.sql_session import (
    StaleConnection,
    bind_names,
    read_only,
    single_value,
    statement,
)
from okr_pipeline.okr_core.names import unknown_name_message
from okr_pipeline.okr_core.redaction import Redactor, mask_url, truncate
from okr_pipeline.okr_core.settings import ConnectionSettings

__all__ = ["BIND_PARAMETERS", "SqlSource", "SqlSourceConfig"]

BIND_PARAMETERS = ("as_of", "cycle_start", "cycle_end")

#: ``:as_of::date`` is read as text followed by a cast, never as the parameter.
_CAST_PARAMETER = re.compile(r"(?<![:\w]):(as_of|cycle_start|cycle_end)::")


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
            "One query (SELECT, WITH, VALUES, TABLE or SHOW) returning one row; a second "
            "statement, session commands (SET, DO, CALL, COPY, LISTEN...) and functions with "
            "side effects (advisory locks, set_config, dblink...) are refused. May use the "
            "bind parameters :as_of, :cycle_start and :cycle_end (UTC timestamps; "
            "timezone-aware on PostgreSQL, naive UTC elsewhere)."
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
        # The substring test first: a run checks every stored query again, and most have
        # no "::" at all.
        cast = _CAST_PARAMETER.search(query) if "::" in query else None
        if cast:
            raise ValueError(
                f"':{cast[1]}::' is read as text, not as a parameter; write "
                f"CAST(:{cast[1]} AS <type>) instead"
            )
        unknown = bind_names(query) - set(BIND_PARAMETERS)
        if unknown:
            names = ", ".join(f":{n}" for n in sorted(unknown))
            valid = ", ".join(f":{n}" for n in BIND_PARAMETERS)
            raise ValueError(
                f"unknown bind parameter {names}. Valid: {valid}. Write a literal colon as '\\:'"
            )
        return query

    @field_validator("query")
    @classmethod
    def _one_read_only_query(cls, query: str) -> str:
        sql_guard.check_query(query)  # UnsafeQueryError is a ValueError: a validation error
        return query

    def uses_as_of(self) -> bool:
        """True when the query binds ``:as_of``.

        Returns:
            Whether the query depends on the as-of.
        """
        return "as_of" in bind_names(self.query)

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


class SqlSource(BaseSource[SqlSourceConfig]):
    """Runs a read-only SQL query returning one number, on any SQLAlchemy database.

    Args:
        env: Connections and secrets of this run.
    """

    type_name = "sql"
    config_model = SqlSourceConfig
    max_batch = 50
    reads = "one read-only SQL query (:as_of, :cycle_start, :cycle_end bound)"
    authentication = "the connection URL's user and password (settings)"
    tested_against = "real servers: PostgreSQL, MariaDB, SQLite"

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
            raise FatalSourceError(
                f"{where}: "
                + unknown_name_message("connection", config.connection, self.env.connections)
            )
        try:
            # Again here: a config may have been built without validation.
            sql_guard.check_query(config.query)
        except sql_guard.UnsafeQueryError as exc:
            raise FatalSourceError(f"{where}: {exc}") from None
        url = settings.url.get_secret_value()
        redact = Redactor(url_secrets(url))
        timeout = config.timeout_seconds or settings.timeout_seconds
        try:
            engine = self._engine(config.connection, settings)
            try:
                return self._run(engine, config, ctx, timeout, settings, where, redact)
            except StaleConnection:
                # The pool held connections the server dropped (a restart, an idle
                # timeout); SQLAlchemy has discarded them, so one more try gets a fresh one.
                return self._run(engine, config, ctx, timeout, settings, where, redact)
        except StaleConnection as exc:
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
        the queries of a batch share one read-only transaction and each KR costs two (its
        query, then a rollback to a savepoint taken before it), so nothing a KR did (a
        failed statement, a changed setting) reaches the next; the transaction is never
        committed (see :mod:`connectors.sql_batch`). Elsewhere, and for KRs with their own
        timeout, each query runs on its own as in :meth:`fetch`.

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
            or ms(config.timeout_seconds or settings.timeout_seconds)
            != ms(settings.timeout_seconds)
        ]
        alone_set = set(alone)
        together = [i for i in range(len(items)) if i not in alone_set]
        results: list[Decimal | Exception | None] = [None] * len(items)
        for i, outcome in zip(alone, super().fetch_many([items[i] for i in alone]), strict=True):
            results[i] = outcome
        outcomes = in_one_transaction(engine, settings, [items[i] for i in together])
        for i, outcome in zip(together, outcomes, strict=True):
            results[i] = outcome
        return results

    def describe(self, config: SqlSourceConfig, ctx: SourceContext) -> str:
        """The connection (password masked), the query and the parameters it binds.

        Args:
            config: The validated SQL source config.
            ctx: As-of time and cycle bounds, as they would be bound.

        Returns:
            The connection and query, then ``parameters: as_of=...`` (or ``none``).
        """
        settings = self.env.connections.get(config.connection)
        target = mask_url(settings.url.get_secret_value()) if settings else "not in the settings"
        values = {"as_of": ctx.as_of, "cycle_start": ctx.cycle_start, "cycle_end": ctx.cycle_end}
        bound = [
            f"{name}={values[name].isoformat()}"
            for name in BIND_PARAMETERS
            if name in bind_names(config.query)
        ]
        return (
            f"sql on connection {config.connection!r} ({target})\n"
            f"{config.query.strip()}\n"
            f"parameters: {', '.join(bound) or 'none'}"
        )

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
        if session_timeout(engine, settings) is None:
            return None
        return engine, settings

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
        stmt = statement(config.query, ctx, engine.dialect)
        opened_with = session_timeout(engine, settings)
        with engine.connect() as conn, read_only(conn, timeout, opened_with) as timed_out:
            try:
                result = conn.execute(stmt)
                return single_value(result, config.column, where)
            except sa_exc.DBAPIError as exc:
                if exc.connection_invalidated:
                    raise StaleConnection(exc) from exc
                raise db_error(exc, timed_out(), timeout, where, redact) from exc

    def release_session(self, key: str) -> None:
        """Close one idle pooled connection of the key's connection (see BaseSource).

        Args:
            key: ``"sql:<connection>"``.
        """
        engine = self._engines.get(key.partition(":")[2])
        if engine is not None:
            close_idle_connection(engine)

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
                engine = create_engine(settings)
                self._engines[name] = engine
            return engine

    def __repr__(self) -> str:
        return f"SqlSource(engines={sorted(self._engines)}, env={self.env!r})"
