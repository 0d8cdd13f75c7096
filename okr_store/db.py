"""Engines and schema migrations for the store.

``make_engine`` gives an engine tuned for the backend; ``upgrade`` brings its schema to the
newest Alembic revision. Alembic runs from code: the configuration is built here with
``script_location`` pointing into this package, so no ``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

import re
import sqlite3
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url

from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_store.store_errors import (
    SUPPORTED_BACKENDS,
    translating_store_errors,
    unsupported_backend,
)

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: How long a SQLite connection waits for another writer before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Execution option naming how a SQLite transaction begins ("DEFERRED" or "IMMEDIATE").
#: Writers begin IMMEDIATE: taking the write lock up front lets busy_timeout queue them,
#: where a deferred reader upgrading to a writer fails at once with "database is locked".
SQLITE_BEGIN = "okr_sqlite_begin"

#: Arbitrary constant identifying the migration lock among PostgreSQL advisory locks.
_PG_MIGRATION_LOCK = 0x6F6B725F6D6967  # "okr_mig"


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine for the store at ``url``.

    SQLite: creates the database file's folder, turns on WAL (readers do not block the
    writer), foreign keys and a busy timeout, and lets SQLAlchemy (not the sqlite3 module)
    emit ``BEGIN`` so DDL is transactional. PostgreSQL: ``pool_pre_ping`` so connections
    dropped by the server or a proxy are replaced; a bare ``postgresql://`` URL uses psycopg 3.

    Args:
        url: SQLAlchemy database URL.
        **kwargs: passed on to :func:`sqlalchemy.create_engine`.

    Returns:
        The engine. The schema is not touched; call :func:`upgrade`.

    Raises:
        StoreUnavailableError: the URL does not parse, names a database other than SQLite
            or PostgreSQL, or a driver that is not installed, or the SQLite file's folder
            cannot be created. The message names the setting and masks the password.
    """
    with translating_store_errors(url):
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in SUPPORTED_BACKENDS:
            raise unsupported_backend(parsed)
        if backend == "sqlite":
            return _make_sqlite_engine(parsed, **kwargs)
        if parsed.drivername == "postgresql":
            # psycopg2 is not a dependency; psycopg 3 is.
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(parsed, **kwargs)


def _make_sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not in_memory and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The sqlite3 module's own transaction handling begins late and never around DDL;
        # switching it off lets the "begin" hook below start real transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                _enable_wal(cursor)
                # Safe with WAL (a crash loses at most the last commits, never corrupts)
                # and much faster than FULL for frequent small commits.
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"invalid {SQLITE_BEGIN} {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _enable_wal(cursor: Any) -> None:
    # WAL is a property of the file: once set it stays. Switching to it needs a moment with
    # no other connection in a transaction, and SQLite reports "database is locked" at once
    # rather than waiting out busy_timeout, so processes starting together retry briefly.
    for attempt in range(100):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)


def alembic_config() -> Config:
    """Return an Alembic configuration for the store's migrations (no ini file needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


_REVISION_LINE = re.compile(
    r"^(revision|down_revision)(?:\s*:[^=\n]*)?\s*=\s*(?:\"([^\"\n]*)\"|'([^'\n]*)'|(None))\s*$",
    re.M,
)


@lru_cache(maxsize=1)
def head_revision() -> str:
    """Return the newest migration revision shipped with this package.

    Every command that opens the store asks; Alembic (and what it imports) costs a tenth
    of a second, so the migration files' own ``revision`` and ``down_revision`` lines are
    read first; Alembic decides when they do not name exactly one head.
    """
    head = _head_from_files()
    if head is not None:
        return head
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if found is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return found


def _head_from_files() -> str | None:
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = {name: quoted or single or None for name, quoted, single, _ in
                 _REVISION_LINE.findall(path.read_text(encoding="utf-8"))}  # fmt: skip
        if not found.get("revision") or "down_revision" not in found:
            return None  # not written plainly: Alembic reads it
        revisions.add(str(found["revision"]))
        if found["down_revision"]:
            parents.add(str(found["down_revision"]))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def current_revision(engine: Engine) -> str | None:
    """Return the schema revision of the database, or None if it was never migrated.

    Read from Alembic's version table with plain SQL (the migrations are one line, so it
    holds one row at most).

    Raises:
        StoreUnavailableError: the store cannot be reached, opened or read (a setup problem).
    """
    with translating_store_errors(engine.url), engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    if len(rows) > 1:  # pragma: no cover - a linear history leaves one row
        raise RuntimeError(f"the store's version table names {len(rows)} revisions")
    return str(rows[0][0]) if rows else None


class StoreNotReadyError(ConfigError):
    """A command that only reads found no store to read, or one that needs an upgrade.

    Attributes:
        missing: True when there is no store yet (no file, or no tables); False when its
            schema is at another revision than this version of okr-pipeline expects.
    """

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


def open_engine_to_read(url: str | URL) -> Engine:
    """An engine on an existing store whose schema is at head, creating and migrating nothing.

    Reading commands use it so that asking in an empty folder leaves no ``.okr/okr.db``
    behind: a missing SQLite file is reported before anything (folder or file) is created.

    Args:
        url: SQLAlchemy database URL of the store.

    Returns:
        The engine; the caller disposes of it.

    Raises:
        StoreNotReadyError: No store there yet, or its schema is not at head (the message
            says which; ``okr db upgrade`` migrates it).
        StoreUnavailableError: The store cannot be reached or read (a setup problem).
    """
    with translating_store_errors(url):
        parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
        on_disk = not in_memory and not database.startswith("file:")
        if on_disk and not Path(database).expanduser().is_file():
            raise StoreNotReadyError(f"no store yet at {database}", missing=True)
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
    except BaseException:
        engine.dispose()
        raise
    head = head_revision()
    if revision == head:
        return engine
    engine.dispose()
    if revision is None:
        raise StoreNotReadyError("the store has no tables yet", missing=True)
    raise StoreNotReadyError(
        f"the store's schema is at revision {revision}, this version of okr-pipeline reads {head}",
        missing=False,
    )


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest revision; a no-op when it is already there.

    Safe when several processes call it at once (workers starting together): on PostgreSQL
    the migration runs under a transaction-scoped advisory lock, on SQLite inside a
    ``BEGIN IMMEDIATE`` transaction; the second caller waits, then finds nothing to do.
    Migrations run in one transaction on both, so a failure leaves the schema unchanged.

    Args:
        engine: engine from :func:`make_engine`.

    Raises:
        StoreUnavailableError: the store cannot be reached, or refuses the login, or its
            tables cannot be created or written (a setup problem, with the fix).
    """
    if current_revision(engine) == head_revision():
        return  # the common case: no lock, no Alembic machinery
    with translating_store_errors(engine.url):
        migrate(engine, "upgrade", "head")


def migrate(engine: Engine, action: str, revision: str) -> None:
    """Run Alembic's ``upgrade`` or ``downgrade`` to ``revision`` in one locked transaction.

    On SQLite, foreign keys are off while it runs: a migration that must rebuild a table
    (SQLite cannot alter a CHECK constraint) drops and recreates a table other tables refer
    to. They are checked once the migration has committed, then turned back on.

    Args:
        engine: engine from :func:`make_engine`.
        action: ``"upgrade"`` or ``"downgrade"``.
        revision: target revision (``"head"``, ``"0002"``, ...).
    """
    from alembic import command

    config = alembic_config()
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        raw: Any = connection.connection.driver_connection
        if sqlite:
            # Only outside a transaction does SQLite take this pragma: sent on the driver
            # connection (in autocommit mode, see _on_connect), not through a SQLAlchemy
            # statement, which would begin one first.
            raw.execute("PRAGMA foreign_keys = OFF")
            connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        try:
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": _PG_MIGRATION_LOCK},
                    )
                # Alembic sees the transaction already open and runs inside it (no commit
                # of its own), so the lock is held until every migration is committed.
                config.attributes["connection"] = connection
                getattr(command, action)(config, revision)
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys = ON")
        if sqlite:
            broken = raw.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows without their parent: {broken[:5]}")
