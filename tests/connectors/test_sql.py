"""SQL source against real SQLite, PostgreSQL and MariaDB databases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr, ValidationError

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.connectors.sql import SqlSource, SqlSourceConfig
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.connectors.sql_helpers import guard_off, unchecked

BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
SLEEP = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) FROM c",
    "postgres": "SELECT pg_sleep(5)",
    "mariadb": "SELECT SLEEP(5)",
}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str:
    url = str(request.getfixturevalue(f"{backend}_url"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE metrics (name VARCHAR(20), amount NUMERIC(20, 6), ratio FLOAT, "
            "label VARCHAR(20), flag BOOLEAN, day DATE)"
        )
        conn.exec_driver_sql(
            "INSERT INTO metrics VALUES "
            "('signups', 1234.500000, 0.25, 'abc', TRUE, '2024-04-15'), "
            "('churn', NULL, 0.1, '17.5', FALSE, '2024-06-15'), "
            "('old', 3, 2.5, 'x', FALSE, '2023-01-01')"
        )
    engine.dispose()
    return url


@pytest.fixture
def source(db_url: str) -> Iterator[SqlSource]:
    env = SourceEnvironment(
        connections={"wh": ConnectionSettings(url=SecretStr(db_url), timeout_seconds=5)}
    )
    with SqlSource(env) as src:
        yield src


def sql(query: str, **fields: Any) -> SqlSourceConfig:
    return SqlSourceConfig(type="sql", connection="wh", query=query, **fields)


def table_rows(db_url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql("SELECT name FROM metrics ORDER BY name")]
    engine.dispose()
    return rows


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT amount FROM metrics WHERE name = 'signups'", Decimal("1234.5")),
        ("SELECT count(*) FROM metrics", Decimal(3)),
        ("SELECT ratio FROM metrics WHERE name = 'churn'", Decimal("0.1")),
        ("SELECT label FROM metrics WHERE name = 'churn'", Decimal("17.5")),
        ("SELECT flag FROM metrics WHERE name = 'signups'", Decimal(1)),
        ("SELECT flag FROM metrics WHERE name = 'churn'", Decimal(0)),
        ("SELECT amount FROM metrics WHERE name = 'churn'", None),
        ("SELECT name, amount AS value FROM metrics WHERE name = 'old'", Decimal(3)),
        ("SELECT 1234567890123456789", Decimal("1234567890123456789")),
    ],
)
def test_values(source: SqlSource, ctx: SourceContext, query: str, expected: Decimal | None):
    value = source.fetch(sql(query), ctx)
    assert value == expected
    assert value is None or isinstance(value, Decimal)


def test_named_column(source: SqlSource, ctx: SourceContext):
    query = "SELECT amount, ratio FROM metrics WHERE name = 'old'"
    assert source.fetch(sql(query, column="ratio"), ctx) == Decimal("2.5")


def test_bound_cycle_parameters(source: SqlSource, ctx: SourceContext):
    # The cycle is 2024 Q2: only 'signups' (April) falls inside it. as_of is 1 May.
    query = (
        "SELECT count(*) FROM metrics WHERE day >= :cycle_start AND day < :cycle_end "
        "AND day <= :as_of"
    )
    assert source.fetch(sql(query), ctx) == Decimal(1)


def test_query_without_parameters_is_not_given_any(source: SqlSource, ctx: SourceContext):
    # A literal colon in a string must not become a parameter.
    assert source.fetch(sql("SELECT count(*) FROM metrics WHERE label <> 'a\\:b'"), ctx) == 3


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("SELECT amount FROM metrics", "returned 3 rows; expected 1"),
        ("SELECT amount FROM metrics WHERE name = 'nobody'", "returned no rows; expected 1"),
        ("SELECT name, amount FROM metrics WHERE name = 'old'", "returned 2 columns"),
        ("SELECT label FROM metrics WHERE name = 'signups'", "is 'abc', not a number"),
        ("SELECT day FROM metrics WHERE name = 'old'", "not a number"),
        ("SELECT 1 +", "the query failed"),
        ("SELECT amount FROM no_such_table", "no_such_table"),
    ],
)
def test_bad_results(source: SqlSource, ctx: SourceContext, query: str, fragment: str):
    with pytest.raises(FatalSourceError) as info:
        source.fetch(sql(query), ctx)
    assert fragment in str(info.value)
    assert "KR growth/signups" in str(info.value)
    assert "connection 'wh'" in str(info.value)


def test_missing_named_column(source: SqlSource, ctx: SourceContext):
    with pytest.raises(FatalSourceError, match="no column 'total'; columns: 'amount'"):
        source.fetch(sql("SELECT amount FROM metrics WHERE name = 'old'", column="total"), ctx)


WRITES = [
    "INSERT INTO metrics (name) VALUES ('hacked')",
    "UPDATE metrics SET name = 'hacked'",
    "DELETE FROM metrics",
    "DROP TABLE metrics",
    "CREATE TABLE hacked (a INT)",
]


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_refused_and_change_nothing(
    source: SqlSource, ctx: SourceContext, db_url: str, statement: str
):
    before = table_rows(db_url)
    with pytest.raises(ValidationError, match="statements are refused"):
        sql(statement)
    with pytest.raises(FatalSourceError, match="statements are refused"):
        source.fetch(unchecked(statement), ctx)
    assert table_rows(db_url) == before


@pytest.mark.parametrize("statement", WRITES)
def test_the_database_refuses_writes_the_check_misses(
    source: SqlSource,
    ctx: SourceContext,
    db_url: str,
    statement: str,
    monkeypatch: pytest.MonkeyPatch,
):
    # Defence in depth: with the statement check off, the read-only transaction holds.
    guard_off(monkeypatch)
    before = table_rows(db_url)
    with pytest.raises(FatalSourceError, match="read-only; nothing was changed"):
        source.fetch(unchecked(statement), ctx)
    assert table_rows(db_url) == before
    # The pooled connection is still read-only for the next fetch.
    with pytest.raises(FatalSourceError, match="read-only"):
        source.fetch(unchecked("DELETE FROM metrics"), ctx)
    assert table_rows(db_url) == before


def test_statement_timeout(db_url: str, backend: str, ctx: SourceContext):
    env = SourceEnvironment(connections={"wh": ConnectionSettings(url=SecretStr(db_url))})
    with SqlSource(env) as source:
        started = time.monotonic()
        with pytest.raises(RetriableSourceError, match=r"timed out after 0\.5s"):
            source.fetch(sql(SLEEP[backend], timeout_seconds=0.5), ctx)
        assert time.monotonic() - started < 3
        # The connection is usable afterwards.
        assert source.fetch(sql("SELECT 1"), ctx) == 1


def test_concurrent_fetches(source: SqlSource, ctx: SourceContext):
    cfg = sql("SELECT count(*) FROM metrics")
    with ThreadPoolExecutor(max_workers=8) as pool:
        values = list(pool.map(lambda _: source.fetch(cfg, ctx), range(40)))
    assert values == [Decimal(3)] * 40
    assert repr(source).startswith("SqlSource(engines=['wh']")


@pytest.mark.postgres
def test_password_masked_when_connection_fails(ctx: SourceContext):
    url = "postgresql+psycopg://bob:pw-0c4f1d-SECRET@127.0.0.1:1/db"
    env = SourceEnvironment(
        connections={"wh": ConnectionSettings(url=SecretStr(url), timeout_seconds=2)}
    )
    with SqlSource(env) as source, pytest.raises(RetriableSourceError) as info:
        source.fetch(sql("SELECT 1"), ctx)
    assert "database unavailable" in str(info.value)
    assert "pw-0c4f1d-SECRET" not in str(info.value)
    assert "pw-0c4f1d-SECRET" not in repr(source)


@pytest.mark.postgres
def test_password_masked_in_query_errors(postgres_url: str, ctx: SourceContext):
    # Trust auth accepts any password, so the query runs and fails on the server; the
    # message echoes the query, which here contains the password.
    url = sa.make_url(postgres_url).set(password="pw-51aa07-SECRET")
    env = SourceEnvironment(
        connections={
            "wh": ConnectionSettings(url=SecretStr(url.render_as_string(hide_password=False)))
        }
    )
    with SqlSource(env) as source, pytest.raises(FatalSourceError) as info:
        source.fetch(sql("SELECT nope FROM x WHERE 'pw-51aa07-SECRET' = 'pw-51aa07-SECRET'"), ctx)
    assert "pw-51aa07-SECRET" not in str(info.value)


def test_unknown_driver_is_fatal(ctx: SourceContext):
    env = SourceEnvironment(connections={"wh": ConnectionSettings(url=SecretStr("nodb://u:p@h/d"))})
    with SqlSource(env) as source, pytest.raises(FatalSourceError, match="NoSuchModuleError"):
        source.fetch(sql("SELECT 1"), ctx)


def test_sqlite_in_memory(ctx: SourceContext):
    env = SourceEnvironment(connections={"wh": ConnectionSettings(url=SecretStr("sqlite://"))})
    with SqlSource(env) as source:
        assert source.fetch(sql("SELECT 2.5 AS value"), ctx) == Decimal("2.5")


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("SELECT :foo", "unknown bind parameter :foo. Valid: :as_of, :cycle_start, :cycle_end"),
        ("SELECT :as_of::date", "write CAST(:as_of AS <type>)"),
        ("", "at least 1 character"),
    ],
)
def test_query_validation(query: str, fragment: str):
    with pytest.raises(
        ValidationError,
        match=r"(?s)query.*"
        + fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.").replace("*", r"\*"),
    ):
        sql(query)


def test_config_keys():
    cfg = sql("SELECT 1")
    assert cfg.connection_names() == {"wh"}
    assert cfg.secret_names() == set()
    assert cfg.concurrency_key() == "sql:wh"


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count(*) FROM t WHERE ts < :as_of",
        "SELECT :as_of::date, x::int FROM t WHERE a = :cycle_start AND b < :cycle_end",
        r"SELECT '\:as_of' || :cycle_end",
        "SELECT 1 WHERE 'a:b' = 'a:b' AND c = :as_of_x",
        "SELECT :as_of:x",
    ],
)
def test_bind_names_agree_with_sqlalchemy(query: str) -> None:
    # _bind_names matches SQLAlchemy's pattern instead of compiling; they must agree.
    from okr_pipeline.connectors.sql_session import bind_names as _bind_names

    assert _bind_names(query) == frozenset(sa.text(query).compile().params)
