"""Setup problems with the store, told as one line that names the setting and the fix.

A store that cannot be reached, refuses the credentials, lacks its driver, sits in a
read-only folder or on a full disk is not a bug in okr-pipeline: the user fixes a setting
or the machine. :func:`store_unavailable` turns the SQLAlchemy, driver or OS error into a
:class:`~okr_core.errors.StoreUnavailableError` (the store URL masked, the cause chained by
the caller) and returns None for errors it does not recognise, which stay bugs.
"""

from __future__ import annotations

import errno
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from okr_pipeline.okr_core.errors import StoreUnavailableError
from okr_pipeline.okr_core.settings import mask_url

__all__ = ["SETTING", "StoreUnavailableError", "store_unavailable", "translating_store_errors"]

#: How the store's setting is named in every message: its variable and its okr.toml key.
SETTING = "OKR_STORE_URL (store_url in okr.toml)"

#: The extra that installs each driver module okr-pipeline knows.
_DRIVER_EXTRAS = {"psycopg": "pip install 'okr-pipeline[postgres]'"}

#: The store's schema uses SQLite and PostgreSQL features only.
SUPPORTED_BACKENDS = ("sqlite", "postgresql")

# libpq and SQLite messages, matched in lower case. The server's SQLSTATE is not available
# for errors raised while connecting (psycopg reports them with sqlstate None).
_CREDENTIALS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "does not exist",  # role "x" does not exist; database handled before
    "not permitted to log in",
    "no pg_hba.conf entry",
    "permission denied for database",
)
_UNREACHABLE = (
    "connection refused",
    "failed to resolve host",
    "could not translate host name",
    "name or service not known",
    "timeout expired",
    "timed out",
    "no route to host",
    "network is unreachable",
    "server closed the connection unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "terminating connection due to administrator command",
    "connection is closed",
    "consuming input failed",
    "no such file or directory",  # a Unix socket that is not there
)
_READ_ONLY = ("unable to open database file", "readonly database", "read-only file system")
_DISK_FULL = ("database or disk is full", "no space left on device", "could not extend file")


def store_unavailable(exc: BaseException, url: str | URL) -> StoreUnavailableError | None:
    """The setup error that ``exc`` means for the store at ``url``, or None if it is none.

    Recognises: a URL that does not parse, an unknown or unsupported scheme, a missing
    driver module, a server that does not answer, refused credentials, a missing database,
    missing rights, a read-only server, a read-only or unwritable SQLite folder or file, a
    full disk, a file that is not a SQLite database. Raise the result ``from exc``.

    Args:
        exc: What SQLAlchemy, the driver or the OS raised while opening or using the store.
        url: The store's URL (the password is never shown).

    Returns:
        The error to raise, or None when ``exc`` is not a setup problem (then it is a bug).
    """
    shown = _masked(url)
    if isinstance(exc, StoreUnavailableError):
        return exc
    if isinstance(exc, sa.exc.ArgumentError) and "URL" in str(exc):
        return StoreUnavailableError(
            f"the store URL {shown!r} is not a database URL: set {SETTING} to "
            "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
        )
    if isinstance(exc, sa.exc.NoSuchModuleError):
        return StoreUnavailableError(
            f"the store URL {shown} names a database or driver SQLAlchemy does not know "
            f"({_scheme(url)}): set {SETTING} to sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
        )
    if isinstance(exc, ImportError):
        module = (exc.name or "").split(".")[0] or "its driver"
        fix = _DRIVER_EXTRAS.get(module, f"pip install {module}")
        alternative = "" if module in _DRIVER_EXTRAS else " (or use postgresql+psycopg://)"
        return StoreUnavailableError(
            f"the store URL {shown} needs the Python package '{module}', which is not "
            f"installed: {fix}{alternative}, or change {SETTING}"
        )
    if isinstance(exc, sa.exc.DBAPIError):
        return _database_error(exc, url, shown)
    if isinstance(exc, OSError):
        return _os_error(exc, url, shown)
    return None


@contextmanager
def translating_store_errors(url: str | URL) -> Iterator[None]:
    """Raise a :class:`StoreUnavailableError` for setup problems met inside the block.

    Errors that are not setup problems pass through unchanged.
    """
    try:
        yield
    except Exception as exc:  # classified below; what is not a setup problem is re-raised
        error = store_unavailable(exc, url)
        if error is None or error is exc:
            raise
        raise error from exc


def unsupported_backend(url: URL) -> StoreUnavailableError:
    """The error for a store URL whose database okr-pipeline's store does not run on."""
    return StoreUnavailableError(
        f"the store URL {_masked(url)} is a {url.get_backend_name()} database; the store "
        f"runs on SQLite or PostgreSQL: set {SETTING} to sqlite:///PATH or "
        "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"
    )


def _database_error(
    exc: sa.exc.DBAPIError, url: str | URL, shown: str
) -> StoreUnavailableError | None:
    cause = exc.orig
    text = _reason(str(cause) if cause is not None else str(exc), url)
    lower = text.lower()
    sqlstate = str(getattr(cause, "sqlstate", None) or "")
    if isinstance(cause, sqlite3.Error):
        return _sqlite_error(lower, text, url, shown)
    if re.search(r'database ".*" does not exist', lower) or sqlstate == "3D000":
        return StoreUnavailableError(
            f"cannot open the store {shown}: {text}; create the database (createdb) or fix "
            f"the database name in {SETTING}"
        )
    if any(marker in lower for marker in _CREDENTIALS) or sqlstate.startswith("28"):
        return StoreUnavailableError(
            f"the store's server refused the login for {shown}: {text}; fix the user or "
            f"password in {SETTING}"
        )
    if sqlstate == "42501" or "permission denied" in lower:
        return StoreUnavailableError(
            f"the store's user may not create or write the store's tables in {shown}: "
            f"{text}; grant it the rights (e.g. GRANT CREATE ON SCHEMA public) or use "
            f"another user in {SETTING}"
        )
    if sqlstate == "25006" or "read-only transaction" in lower:
        return StoreUnavailableError(
            f"the store's server is read-only (a standby?) for {shown}: {text}; point "
            f"{SETTING} at the primary server"
        )
    if sqlstate.startswith("53") or any(marker in lower for marker in _DISK_FULL):
        return StoreUnavailableError(
            f"the store's server is out of disk space or resources for {shown}: {text}; "
            "free space on the database server, then run again"
        )
    # Errors raised while connecting or by a dropped connection come without a SQLSTATE
    # (or with class 08, 57P); those with another one are the server judging a statement.
    client_side = not sqlstate and isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError))
    if (
        client_side
        or exc.connection_invalidated
        or sqlstate.startswith(("08", "57P"))
        or any(marker in lower for marker in _UNREACHABLE)
    ):
        return StoreUnavailableError(
            f"cannot connect to the store {shown}: {text}; start the database server or fix "
            f"the host and port in {SETTING}"
        )
    return None


def _sqlite_error(
    lower: str, text: str, url: str | URL, shown: str
) -> StoreUnavailableError | None:
    path = _sqlite_path(url)
    where = f"{path.parent}" if path is not None else "its folder"
    if any(marker in lower for marker in _DISK_FULL):
        return StoreUnavailableError(
            f"the store {shown} cannot grow: {text}; free disk space in {where}"
        )
    if "not a database" in lower or "malformed" in lower:
        return StoreUnavailableError(
            f"the store file {path or shown} is not a usable SQLite database ({text}); "
            f"move it away or set {SETTING} to another file"
        )
    if any(marker in lower for marker in _READ_ONLY):
        return StoreUnavailableError(
            f"cannot write the store {shown}: {text}; the store's folder {where} and its "
            f"files must be writable: make them writable or set {SETTING} to a writable place"
        )
    if "disk i/o error" in lower:
        return StoreUnavailableError(
            f"the disk under the store {shown} failed: {text}; check the disk of {where}"
        )
    if "locked" in lower:
        return StoreUnavailableError(
            f"the store {shown} stayed locked by another process: {text}; wait for the "
            "other 'okr' command to finish, then run again"
        )
    return None


def _os_error(exc: OSError, url: str | URL, shown: str) -> StoreUnavailableError | None:
    if exc.filename is None:
        return None
    place = Path(str(exc.filename))
    problem = exc.strerror or type(exc).__name__
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        problem = "a file of that name is in the way"
        fix = "move that file away"
    elif isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        fix = f"make {place.parent} writable"
    else:
        fix = "fix the path"
    return StoreUnavailableError(
        f"cannot create the store's folder {place} for {shown}: {problem}; {fix}, or set "
        f"{SETTING} to a store elsewhere"
    )


def _masked(url: str | URL) -> str:
    if isinstance(url, URL):
        # Masked like any text, not as SQLAlchemy parsed it: in "bob:p@ss@host" it reads
        # the password "p" and the host "ss@host", which would show the password's tail.
        url = url.render_as_string(hide_password=False)
    return mask_url(url)


def _scheme(url: str | URL) -> str:
    text = url.render_as_string(hide_password=True) if isinstance(url, URL) else url
    return text.split("://", 1)[0] if "://" in text else text


def _sqlite_path(url: str | URL) -> Path | None:
    try:
        database = make_url(url).database
    except sa.exc.ArgumentError:
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def _reason(text: str, url: str | URL) -> str:
    """The driver's message on one line: the part after libpq's "... failed:" prefixes."""
    first = text.strip().splitlines()[0] if text.strip() else text
    first = first.rsplit(" failed: ", 1)[-1]
    first = re.sub(r"^(FATAL|ERROR):\s*", "", first.strip())
    first = re.sub(r"\s+", " ", first).strip()
    password = _password(url)
    if password:
        first = first.replace(password, "***")
    return first.rstrip(".")


def _password(url: str | URL) -> str | None:
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except sa.exc.ArgumentError:
        return None
    password = parsed.password
    return str(password) if password else None
