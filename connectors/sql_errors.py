"""Classify database driver errors: read-only violation, timeout, transient, or fatal.

Drivers report the same situation differently (PostgreSQL: SQLSTATE; MySQL/MariaDB: errno;
SQLite: error name), so the SQL source maps each to what the caller should do.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import exc as sa_exc

from okr_pipeline.connectors.errors import (
    FatalSourceError,
    RetriableSourceError,
    SourceError,
    short_message,
)
from okr_pipeline.okr_core.redaction import Redactor, truncate

__all__ = ["db_error"]

# Error codes by what they mean for the caller. PostgreSQL: SQLSTATE; MySQL/MariaDB: errno.
_PG_READ_ONLY = {"25006"}
_PG_TIMEOUT = {"57014"}
_PG_RETRIABLE_PREFIXES = ("08", "53", "57P", "40001", "40P01", "55P03")
_MY_READ_ONLY = {1792, 1290, 1836}
_MY_TIMEOUT = {1969, 3024, 1317, 1028}
_MYSQL_DRIVERS = ("pymysql", "MySQLdb", "mysql")
_MY_RETRIABLE = {1040, 1053, 1205, 1213, 1927, 2002, 2003, 2005, 2006, 2013, 2055}
# libpq reports a login the server refuses as text, with no SQLSTATE to read: these are the
# server's words for the refusals (SQLSTATE 28000, 28P01, 3D000) that no retry will fix.
_PG_REFUSED_LOGIN = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "authentication failed for user",
    "does not exist",  # role "x" / database "x" does not exist
    "permission denied for database",
)


def db_error(
    exc: sa_exc.DBAPIError,
    timed_out: bool,
    timeout: float,
    where: str,
    redact: Redactor,
) -> SourceError:
    """Turn a driver error into the SourceError the caller should see.

    Args:
        exc: The SQLAlchemy-wrapped driver error.
        timed_out: Whether our own (SQLite) deadline fired.
        timeout: The statement timeout in seconds, for the message.
        where: "KR ...: sql source on connection ..." prefix.
        redact: Removes the connection's password from the driver's message.

    Returns:
        FatalSourceError for writes and SQL errors, RetriableSourceError for timeouts and
        connection problems; the message carries the truncated, redacted database message.
    """
    detail = truncate(redact(_db_message(exc.orig)))
    # The run's one line: the database's first words, not its whole message.
    brief = short_message(detail, 100)
    kind = _classify(exc, timed_out)
    if kind == "read_only":
        return FatalSourceError(
            f"{where}: the query tried to write, but sources are read-only; nothing was "
            f"changed. Use a SELECT. ({detail})",
            short="the query tried to write (sources are read-only)",
        )
    if kind == "timeout":
        return RetriableSourceError(
            f"{where}: the query timed out after {timeout:g}s; make it faster or raise "
            f"timeout_seconds. ({detail})",
            short=f"the query timed out after {timeout:g}s",
        )
    if kind == "retriable":
        return RetriableSourceError(
            f"{where}: database unavailable: {detail}", short=f"database unavailable: {brief}"
        )
    if kind == "refused":
        return FatalSourceError(
            f"{where}: the database refused the login; check the connection's user, "
            f"password and database. ({detail})",
            short="the database refused the login",
        )
    return FatalSourceError(
        f"{where}: the query failed: {detail}", short=f"the query failed: {brief}"
    )


def _db_message(orig: BaseException | None) -> str:
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = f"{args[1]} (error {args[0]})"  # MySQL drivers: (errno, message)
    else:
        text = str(orig)
    return " ".join(text.split())


def _classify(
    exc: sa_exc.DBAPIError, timed_out: bool
) -> Literal["read_only", "timeout", "retriable", "refused", "fatal"]:
    orig = exc.orig
    args: tuple[Any, ...] = getattr(orig, "args", ())
    errno = args[0] if args else None
    # MySQL drivers first: PyMySQL also sets a SQLSTATE, but the errno is more precise.
    if isinstance(errno, int) and type(orig).__module__.startswith(_MYSQL_DRIVERS):
        if errno in _MY_READ_ONLY:
            return "read_only"
        if errno in _MY_TIMEOUT:
            return "timeout"
        if errno in _MY_RETRIABLE:
            return "retriable"
        return "fatal"
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    if isinstance(sqlite_name, str):
        if sqlite_name.startswith("SQLITE_READONLY"):
            return "read_only"
        if timed_out or sqlite_name == "SQLITE_INTERRUPT":
            return "timeout"
        if sqlite_name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return "retriable"
        return "fatal"
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate in _PG_READ_ONLY:
            return "read_only"
        if sqlstate in _PG_TIMEOUT:
            return "timeout"
        if sqlstate.startswith(_PG_RETRIABLE_PREFIXES):
            return "retriable"
        return "fatal"
    if _refused_login(orig):
        return "refused"
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        # PEP 249: OperationalError is about the database's operation (disconnects,
        # unreachable server), not the statement; unknown drivers get the benefit of it.
        return "retriable"
    return "fatal"


def _refused_login(orig: BaseException | None) -> bool:
    """Whether a PostgreSQL server refused the login (it answered: not a network error)."""
    text = str(orig)
    return "FATAL:" in text and any(phrase in text for phrase in _PG_REFUSED_LOGIN)
