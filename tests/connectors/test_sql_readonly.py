"""Read-only means read-only: one query per KR, no side effects, no state left to the next KR.

Each attack is tried three ways on every database: as written in an OKR file (refused by
validation), handed over without validation (refused before the database sees it), and
past the statement check (the database refuses or undoes it). Each test counts the rows
of a table afterwards to show the write did not happen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr, ValidationError

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.connectors.registry import parse_source_config
from okr_pipeline.connectors.sql import SqlSource, SqlSourceConfig
from okr_pipeline.connectors.sql_guard import UnsafeQueryError, check_query
from okr_pipeline.okr_core.errors import DefinitionError
from okr_pipeline.okr_core.loader import load_okrs
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.connectors.sql_helpers import guard_off, unchecked

MULTI_PG = (
    "SELECT 1 AS value; COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; "
    "COMMIT; INSERT INTO t VALUES (666); COMMIT"
)
MULTI_MY = (
    "SELECT 1 AS value; COMMIT; SET SESSION TRANSACTION READ WRITE; "
    "INSERT INTO t VALUES (666); COMMIT"
)
MULTI_LITE = "SELECT 1 AS value; COMMIT; PRAGMA query_only = OFF; INSERT INTO t VALUES (666)"

SETUP = {
    "postgres": [
        "CREATE TABLE t (v int)",
        "INSERT INTO t VALUES (10)",
        "CREATE SCHEMA evil",
        "CREATE TABLE evil.t (v int)",
        "INSERT INTO evil.t VALUES (99999)",
        "CREATE PROCEDURE add_row() LANGUAGE sql AS 'INSERT INTO t VALUES (666)'",
        "CREATE FUNCTION write_row() RETURNS int LANGUAGE plpgsql AS "
        "'BEGIN INSERT INTO t VALUES (666); RETURN 1; END'",
        # Functions a user could create that reach what the statement check refuses.
        "CREATE FUNCTION evil_path() RETURNS int LANGUAGE plpgsql AS "
        "$$BEGIN PERFORM set_config('search_path', 'evil', true); RETURN 1; END$$",
        "CREATE FUNCTION session_path() RETURNS int LANGUAGE plpgsql AS "
        "$$BEGIN PERFORM set_config('search_path', 'evil', false); RETURN 1; END$$",
        "CREATE FUNCTION no_timeout() RETURNS int LANGUAGE plpgsql AS "
        "$$BEGIN PERFORM set_config('statement_timeout', '0', true); RETURN 1; END$$",
        "CREATE FUNCTION take_lock() RETURNS int LANGUAGE plpgsql AS "
        "'BEGIN PERFORM pg_advisory_lock(4242); RETURN 1; END'",
        "CREATE EXTENSION IF NOT EXISTS dblink",
    ],
    "mariadb": [
        "CREATE TABLE t (v int)",
        "INSERT INTO t VALUES (10)",
        "CREATE PROCEDURE add_row() INSERT INTO t VALUES (666)",
        "CREATE FUNCTION write_row() RETURNS int MODIFIES SQL DATA "
        "BEGIN INSERT INTO t VALUES (666); RETURN 1; END",
        "CREATE FUNCTION take_lock() RETURNS int BEGIN DO GET_LOCK('okr', 0); RETURN 1; END",
    ],
    "sqlite": ["CREATE TABLE t (v int)", "INSERT INTO t VALUES (10)"],
}

BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str:
    url = str(request.getfixturevalue(f"{backend}_url"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in SETUP[backend]:
            conn.exec_driver_sql(statement)
    engine.dispose()
    return url


def make_source(url: str, timeout: float = 5) -> SqlSource:
    settings = ConnectionSettings(url=SecretStr(url), timeout_seconds=timeout)
    return SqlSource(SourceEnvironment(connections={"wh": settings}))


@pytest.fixture
def source(db_url: str) -> Iterator[SqlSource]:
    with make_source(db_url) as src:
        yield src


def rows(url: str) -> list[int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        values = [int(v) for (v,) in conn.exec_driver_sql("SELECT v FROM t ORDER BY v")]
    engine.dispose()
    return values


def advisory_locks(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        count = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).scalar_one()
    engine.dispose()
    return int(count)


def config(query: str, **fields: object) -> SqlSourceConfig:
    return SqlSourceConfig(type="sql", connection="wh", query=query, **fields)  # type: ignore[arg-type]


# (database, query, what the refusal says)
REFUSED = [
    ("postgres", MULTI_PG, "more than one statement: the ';' at column 18 is followed by 'COMMIT'"),
    ("postgres", "DO $$BEGIN INSERT INTO t VALUES (666); END$$", "DO statements are refused"),
    ("postgres", "CALL add_row()", "CALL statements are refused"),
    ("postgres", "COPY t FROM PROGRAM 'echo 666'", "COPY statements are refused"),
    ("postgres", "SET default_transaction_read_only = off", "SET statements are refused"),
    ("postgres", "RESET ALL", "RESET statements are refused"),
    ("postgres", "DISCARD ALL", "DISCARD statements are refused"),
    ("postgres", "LISTEN okr", "LISTEN statements are refused"),
    ("postgres", "SELECT pg_advisory_lock(42)", "function pg_advisory_lock() at column 8"),
    ("postgres", "SELECT set_config('search_path', 'evil', true)", "function set_config()"),
    (
        "postgres",
        "SELECT dblink_exec('dbname=' || current_database(), 'INSERT INTO t VALUES (666)')",
        "function dblink_exec() at column 8 is refused: it connects to another database",
    ),
    ("postgres", "WITH w AS (INSERT INTO t VALUES (666) RETURNING v) SELECT v FROM w", "INSERT"),
    ("mariadb", MULTI_MY, "more than one statement"),
    ("mariadb", "CALL add_row()", "CALL statements are refused"),
    ("mariadb", "SET SESSION TRANSACTION READ WRITE", "SET statements are refused"),
    ("mariadb", "SELECT GET_LOCK('okr', 0)", "function GET_LOCK() at column 8"),
    ("mariadb", "DO GET_LOCK('okr', 0)", "DO statements are refused"),
    ("mariadb", "SELECT 1 /*!; INSERT INTO t VALUES (666) */", "run the text of /*! ... */"),
    ("mariadb", "SELECT v INTO @x FROM t", "INTO at column 10 is refused"),
    ("sqlite", MULTI_LITE, "more than one statement"),
    ("sqlite", "PRAGMA query_only = OFF", "PRAGMA statements are refused"),
    ("sqlite", "ATTACH DATABASE ':memory:' AS other", "ATTACH statements are refused"),
    ("sqlite", "SELECT load_extension('x')", "function load_extension()"),
]


@pytest.mark.parametrize(
    ("database", "query", "fragment"),
    [
        pytest.param(*case, marks=getattr(pytest.mark, case[0]), id=f"{case[0]}-{n}")
        if case[0] != "sqlite"
        else pytest.param(*case, id=f"sqlite-{n}")
        for n, case in enumerate(REFUSED)
    ],
)
def test_refused_at_validation_and_before_the_database(
    database: str, query: str, fragment: str, request: pytest.FixtureRequest, ctx: SourceContext
) -> None:
    url = str(request.getfixturevalue(f"{database}_url"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in SETUP[database]:
            conn.exec_driver_sql(statement)
    engine.dispose()
    with pytest.raises(ValidationError, match="query") as info:
        config(query)
    assert fragment in str(info.value)
    with make_source(url) as src:
        with pytest.raises(FatalSourceError) as fetched:
            src.fetch(unchecked(query), ctx)
        assert fragment in str(fetched.value)
        assert str(fetched.value).startswith("KR growth/signups: sql source on connection 'wh'")
        # In a batch too, and the KRs around it are measured.
        batch = [(config("SELECT 1"), ctx), (unchecked(query), ctx), (config("SELECT 2"), ctx)]
        results = src.fetch_many(batch)
        assert results[0] == 1 and results[2] == 2
        assert isinstance(results[1], FatalSourceError) and fragment in str(results[1])
    assert rows(url) == [10]
    if database == "postgres":
        assert advisory_locks(url) == 0


# (database, query, what the database says) with the statement check off: the database
# itself refuses, or the query runs and what it did is undone (checked by the next query).
PAST_THE_CHECK = [
    ("postgres", MULTI_PG, "cannot insert multiple commands into a prepared statement"),
    ("postgres", "DO $$BEGIN INSERT INTO t VALUES (666); END$$", "read-only"),
    ("postgres", "CALL add_row()", "read-only"),
    ("postgres", "COPY t FROM PROGRAM 'echo 666'", "read-only"),
    ("postgres", "WITH w AS (INSERT INTO t VALUES (666) RETURNING v) SELECT v FROM w", "read-only"),
    ("postgres", "SET default_transaction_read_only = off", "no result set"),
    ("postgres", "SELECT set_config('default_transaction_read_only', 'off', false)", ""),
    ("postgres", "RESET ALL", "no result set"),
    ("postgres", "DISCARD ALL", "cannot run inside a transaction block"),
    ("postgres", "LISTEN okr", "no result set"),
    ("mariadb", MULTI_MY, "error in your SQL syntax"),
    ("mariadb", "CALL add_row()", "read-only"),
    ("mariadb", "SET SESSION TRANSACTION READ WRITE", "no result set"),
    ("sqlite", MULTI_LITE, "one statement at a time"),
    ("sqlite", "PRAGMA query_only = OFF", "no result set"),
]


@pytest.mark.parametrize(
    ("database", "query", "fragment"),
    [
        pytest.param(*case, marks=getattr(pytest.mark, case[0]), id=f"{case[0]}-{n}")
        if case[0] != "sqlite"
        else pytest.param(*case, id=f"sqlite-{n}")
        for n, case in enumerate(PAST_THE_CHECK)
    ],
)
def test_the_database_holds_past_the_check(
    database: str,
    query: str,
    fragment: str,
    request: pytest.FixtureRequest,
    ctx: SourceContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = str(request.getfixturevalue(f"{database}_url"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in SETUP[database]:
            conn.exec_driver_sql(statement)
    engine.dispose()
    guard_off(monkeypatch)
    write = "SELECT write_row()" if database != "sqlite" else "INSERT INTO t VALUES (666)"
    with make_source(url) as src:
        outcome: object
        try:
            outcome = src.fetch(unchecked(query), ctx)
        except FatalSourceError as exc:
            outcome = exc
        if fragment:
            assert isinstance(outcome, FatalSourceError) and fragment in str(outcome)
        # The next query on the same pool is still read-only...
        with pytest.raises(FatalSourceError, match="read-only; nothing was changed"):
            src.fetch(unchecked(write), ctx)
        # ... and so is the next KR of a batch.
        results = src.fetch_many([(unchecked(query), ctx), (unchecked(write), ctx)])
        assert isinstance(results[1], FatalSourceError) and "read-only" in str(results[1])
    assert rows(url) == [10]


# SQLite has no SQL-defined functions: the databases that have them.
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "sqlite"])
def test_writing_functions_fail_read_only(source: SqlSource, db_url: str, backend: str, ctx):
    # A function that writes passes the statement check; the read-only transaction stops it.
    with pytest.raises(FatalSourceError, match="tried to write, but sources are read-only"):
        source.fetch(config("SELECT write_row()"), ctx)
    results = source.fetch_many([(config("SELECT write_row()"), ctx)] * 2)
    assert all(isinstance(r, FatalSourceError) and "read-only" in str(r) for r in results)
    assert rows(db_url) == [10]


@pytest.mark.postgres
def test_the_extended_protocol_refuses_a_second_statement(
    postgres_url: str, ctx: SourceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The query, past the check: before, it stored 1 and wrote the row.
    guard_off(monkeypatch)
    expected = "the query failed: cannot insert multiple"
    with make_source(postgres_url) as src, pytest.raises(FatalSourceError, match=expected):
        src.fetch(unchecked("SELECT 1 AS value; SELECT 2"), ctx)


@pytest.mark.postgres
@pytest.mark.parametrize("guarded", [True, False], ids=["user-function", "past-the-check"])
def test_search_path_does_not_leak_to_the_next_kr(
    postgres_url: str, ctx: SourceContext, monkeypatch: pytest.MonkeyPatch, guarded: bool
) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        for statement in SETUP["postgres"]:
            conn.exec_driver_sql(statement)
    engine.dispose()
    if guarded:
        first = [config("SELECT evil_path()"), config("SELECT session_path()")]
    else:
        guard_off(monkeypatch)
        first = [
            # A number, so the KR succeeds: a failing KR was always rolled back.
            unchecked("SELECT length(set_config('search_path', 'evil', true))"),
            unchecked("SELECT length(set_config('search_path', 'evil', false))"),
        ]
    read = config("SELECT v FROM t")
    with make_source(postgres_url) as src:
        results = src.fetch_many([(first[0], ctx), (read, ctx), (first[1], ctx), (read, ctx)])
        assert results[1] == results[3] == Decimal(10)  # not evil.t's 99999
        # Nor to the next use of the pooled connection, batched or not.
        assert src.fetch_many([(read, ctx), (read, ctx)]) == [Decimal(10)] * 2
        assert src.fetch(read, ctx) == Decimal(10)


@pytest.mark.postgres
@pytest.mark.parametrize("guarded", [True, False], ids=["user-function", "past-the-check"])
def test_statement_timeout_does_not_leak_to_the_next_kr(
    postgres_url: str, ctx: SourceContext, monkeypatch: pytest.MonkeyPatch, guarded: bool
) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        for statement in SETUP["postgres"]:
            conn.exec_driver_sql(statement)
    engine.dispose()
    if guarded:
        first = config("SELECT no_timeout()")
    else:
        guard_off(monkeypatch)
        first = unchecked("SELECT set_config('statement_timeout', '0', true)")
    with make_source(postgres_url, timeout=1) as src:
        started = time.monotonic()
        results = src.fetch_many([(first, ctx), (config("SELECT pg_sleep(6)"), ctx)])
        elapsed = time.monotonic() - started
    assert results[0] in (Decimal(0), Decimal(1))  # set_config's '0', or the function's 1
    assert isinstance(results[1], RetriableSourceError) and "timed out after 1s" in str(results[1])
    assert elapsed < 4


@pytest.mark.postgres
@pytest.mark.parametrize("batched", [True, False], ids=["batch", "single"])
@pytest.mark.parametrize("guarded", [True, False], ids=["user-function", "past-the-check"])
def test_advisory_locks_do_not_outlive_the_kr(
    postgres_url: str,
    ctx: SourceContext,
    monkeypatch: pytest.MonkeyPatch,
    batched: bool,
    guarded: bool,
) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        for statement in SETUP["postgres"]:
            conn.exec_driver_sql(statement)
    engine.dispose()
    if guarded:
        lock = config("SELECT take_lock()")
    else:
        guard_off(monkeypatch)
        lock = unchecked("SELECT pg_advisory_lock(4242) IS NULL")
    with make_source(postgres_url) as src:
        if batched:
            results = src.fetch_many([(lock, ctx), (config("SELECT 5"), ctx)])
            assert results[1] == Decimal(5)
        else:
            src.fetch(lock, ctx)
        # The source and its pooled connection are still open: the lock must be gone.
        assert advisory_locks(postgres_url) == 0


@pytest.mark.mariadb
def test_named_locks_do_not_outlive_the_kr(mariadb_url: str, ctx: SourceContext) -> None:
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as conn:
        for statement in SETUP["mariadb"]:
            conn.exec_driver_sql(statement)
    with make_source(mariadb_url) as src:
        assert src.fetch(config("SELECT take_lock()"), ctx) == 1
        # The source and its pooled connection are still open: the lock must be free.
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT IS_FREE_LOCK('okr')").scalar_one() == 1
    engine.dispose()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1",
        "SELECT 1;",
        "SELECT 1; -- done",
        "  select count(*) from t where name = 'a;b' -- a comment; with a semicolon\n",
        'SELECT "odd;name" FROM t',
        "SELECT 'it''s; fine' AS value",
        "SELECT 1 /* a comment; /* nested */ still one */ + 1",
        "WITH x AS (SELECT 1 AS v) SELECT v FROM x",
        "VALUES (1)",
        "TABLE t",
        "(SELECT 1) UNION (SELECT 2)",
        "SHOW search_path",
        "SELECT pg_sleep(1)",
        "SELECT SLEEP(1)",
        "SELECT share, updated_at, deleted, inserted FROM t",
        "SELECT substring(name FROM 1 FOR 2) FROM t",
        "SELECT count(*) FROM t WHERE ts < :as_of AND label <> 'a\\:b'",
        "SELECT 5 # 3",
    ],
)
def test_plain_queries_pass(query: str) -> None:
    check_query(query)
    assert config(query).query == query


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("SELECT 1; SELECT 2", "more than one statement"),
        ("SELECT 1;;", "more than one statement"),
        ("SELECT 'a\\'; DELETE FROM t; '", "followed by 'DELETE' (as PostgreSQL reads it)"),
        ("SELECT 1 /* /* */ ; DELETE FROM t */", "as MySQL/MariaDB reads it"),
        ("SELECT 1 --x; DELETE FROM t", "as MySQL/MariaDB reads it"),
        ("SELECT $a$ ; $a$", "as MySQL/MariaDB reads it"),
        ("SELECT 1\n;\nDROP TABLE t", "';' at line 2, column 1 of the query"),
        ("SELECT * FROM t FOR UPDATE", "row lock"),
        ("SELECT * FROM t FOR SHARE", "FOR SHARE at column 17 is refused"),
        ("SELECT * FROM t LOCK IN SHARE MODE", "LOCK IN SHARE MODE"),
        ("SELECT v FROM t INTO OUTFILE '/tmp/x'", "INTO"),
        ("EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN statements are refused"),
        ("SELECT NEXT VALUE FOR s", "advances a sequence"),
        ("SELECT nextval('s')", "function nextval()"),
        ("SELECT \"set_config\"('a', 'b', false)", "function set_config()"),
        ("SELECT pg_catalog.pg_terminate_backend(1)", "acts on other sessions"),
        ("SELECT pg_read_file('/etc/passwd')", "reads or writes files"),
        ("SELECT lo_export(1, '/tmp/x')", "reads or writes files"),
        ("SELECT query_to_xml('SELECT 1', true, true, '')", "runs SQL given as text"),
        ("SELECT pg_try_advisory_xact_lock(1)", "takes a lock"),
        ("SELECT dblink('x', 'SELECT 1')", "connects to another database"),
        ("SELECT pg_notify('c', 'm')", "sends a notification"),
        ("SELECT U&\"set\\005fconfig\"('a', 'b', false)", "written with Unicode escapes"),
        ("SELECT pg_catalog . set_config /* x */ ('a', 'b', false)", "function set_config()"),
        ("SELEC 1", "the query starts with 'SELEC', not a query"),
        ("-- nothing\n", "the query is empty"),
        ("BEGIN", "BEGIN statements are refused"),
        ("PREPARE p AS SELECT 1", "PREPARE statements are refused"),
        ("EXECUTE p", "EXECUTE statements are refused"),
        ("UNLISTEN *", "UNLISTEN statements are refused"),
        ("VACUUM INTO '/tmp/x'", "VACUUM statements are refused"),
    ],
)
def test_refusals_name_what_and_why(query: str, fragment: str) -> None:
    with pytest.raises(UnsafeQueryError) as info:
        check_query(query)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_okr_files_report_the_refusal_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "q4.yaml").write_text(
        "cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}\n"
        "objectives:\n"
        "  - id: growth\n"
        "    title: Grow\n"
        "    owner: o@example.com\n"
        "    key_results:\n"
        "      - id: signups\n"
        "        title: Signups from 10 to 20\n"
        "        baseline: 10\n"
        "        target: 20\n"
        "        source:\n"
        "          type: sql\n"
        "          connection: warehouse\n"
        "          query: SELECT 1; COMMIT; INSERT INTO t VALUES (666); COMMIT\n"
    )
    with pytest.raises(DefinitionError) as info:
        load_okrs(tmp_path, validate_source=parse_source_config)
    problems = info.value.problems
    assert len(problems) == 1
    problem = problems[0]
    assert problem.file is not None and problem.file.name == "q4.yaml"
    assert problem.line == 14
    assert problem.loc.endswith("source.query")
    assert "more than one statement" in problem.message
