"""SqlSource.fetch_many: many KRs in one read-only transaction, each isolated from the next."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

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


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (v INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (7)")
    engine.dispose()
    return url


@pytest.fixture
def source(db_url: str) -> Iterator[SqlSource]:
    env = SourceEnvironment(
        connections={"wh": ConnectionSettings(url=SecretStr(db_url), timeout_seconds=2)}
    )
    with SqlSource(env) as src:
        yield src


def items(
    ctx: SourceContext, *queries: str, **fields: Any
) -> list[tuple[SqlSourceConfig, SourceContext]]:
    return [(SqlSourceConfig(type="sql", connection="wh", query=q, **fields), ctx) for q in queries]


def test_values_in_order(source: SqlSource, ctx: SourceContext) -> None:
    results = source.fetch_many(
        items(
            ctx, "SELECT v FROM t", "SELECT v + 1 FROM t", "SELECT NULL", "SELECT count(*) FROM t"
        )
    )
    assert results == [Decimal(7), Decimal(8), None, Decimal(1)]


def test_a_failing_kr_does_not_affect_the_next(
    source: SqlSource, ctx: SourceContext, db_url: str
) -> None:
    batch = items(ctx, "SELECT v FROM t", "SELECT v FROM no_such_table", "SELECT v FROM t")
    batch += [(unchecked("INSERT INTO t VALUES (1)"), ctx)]
    batch += items(
        ctx, "SELECT v FROM t", "SELECT 'abc'", "SELECT v FROM t WHERE :as_of IS NOT NULL"
    )
    results = source.fetch_many(batch)
    assert results[0] == results[2] == results[4] == results[6] == Decimal(7)
    assert isinstance(results[1], FatalSourceError) and "no_such_table" in str(results[1])
    assert isinstance(results[3], FatalSourceError) and "INSERT statements are refused" in str(
        results[3]
    )
    assert isinstance(results[5], FatalSourceError) and "not a number" in str(results[5])
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
    engine.dispose()


def test_failures_anywhere_in_a_large_batch(source: SqlSource, ctx: SourceContext) -> None:
    # Through psycopg the batch is sent at once: a failure makes the server skip what
    # follows it, which must then run all the same, each KR with its own outcome.
    queries = [f"SELECT v + {i} FROM t" for i in range(60)]
    failing = {0, 1, 17, 18, 19, 40, 59}
    for i in failing:
        queries[i] = f"SELECT v FROM no_table_{i}"
    queries[30] = "SELECT v FROM t WHERE v < 0"  # no row: an error of its own
    results = source.fetch_many(items(ctx, *queries))
    for i, result in enumerate(results):
        if i in failing:
            assert isinstance(result, FatalSourceError) and f"no_table_{i}" in str(result)
        elif i == 30:
            assert isinstance(result, FatalSourceError) and "returned no rows" in str(result)
        else:
            assert result == Decimal(7 + i)


@pytest.mark.postgres
def test_session_changes_are_undone_before_the_next_kr(
    postgres_url: str, ctx: SourceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (v int); INSERT INTO t VALUES (7)")
        conn.exec_driver_sql("CREATE SCHEMA other; CREATE TABLE other.t (v int)")
        conn.exec_driver_sql("INSERT INTO other.t VALUES (666)")
    env = SourceEnvironment(connections={"wh": ConnectionSettings(url=SecretStr(postgres_url))})
    guard_off(monkeypatch)  # what the database does with them, past the statement check
    queries = (
        "SET search_path = other",
        "SELECT v FROM t",
        "SET default_transaction_read_only = off",
        "CREATE TABLE evil (i int)",
        "SELECT v FROM t",
    )
    with SqlSource(env) as src:
        results = src.fetch_many([(unchecked(q), ctx) for q in queries])
    assert results[1] == results[4] == Decimal(7)
    assert all(isinstance(r, FatalSourceError) for r in (results[0], results[2], results[3]))
    with engine.connect() as conn:
        tables = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'evil'"
        ).scalar_one()
    engine.dispose()
    assert tables == 0


@pytest.mark.postgres
def test_timeout_in_a_batch_fails_that_kr_only(postgres_url: str, ctx: SourceContext) -> None:
    env = SourceEnvironment(
        connections={"wh": ConnectionSettings(url=SecretStr(postgres_url), timeout_seconds=0.5)}
    )
    with SqlSource(env) as src:
        results = src.fetch_many(items(ctx, "SELECT 1", "SELECT pg_sleep(3)", "SELECT 2"))
    assert results[0] == Decimal(1) and results[2] == Decimal(2)
    assert isinstance(results[1], RetriableSourceError) and "timed out" in str(results[1])


@pytest.mark.postgres
def test_a_dropped_connection_is_replaced(postgres_url: str, ctx: SourceContext) -> None:
    env = SourceEnvironment(connections={"wh": ConnectionSettings(url=SecretStr(postgres_url))})
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with SqlSource(env) as src:
        assert src.fetch_many(items(ctx, "SELECT 1", "SELECT 2")) == [Decimal(1), Decimal(2)]
        database = sa.make_url(postgres_url).database
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            )
        assert src.fetch_many(items(ctx, "SELECT 3", "SELECT 4")) == [Decimal(3), Decimal(4)]
    admin.dispose()


@pytest.mark.postgres
def test_own_timeout_runs_alone(postgres_url: str, ctx: SourceContext) -> None:
    env = SourceEnvironment(
        connections={"wh": ConnectionSettings(url=SecretStr(postgres_url), timeout_seconds=10)}
    )
    with SqlSource(env) as src:
        results = src.fetch_many(
            items(ctx, "SELECT 1")
            + items(ctx, "SELECT pg_sleep(3)", timeout_seconds=0.3)
            + items(ctx, "SELECT 2")
        )
    assert results[0] == Decimal(1) and results[2] == Decimal(2)
    assert isinstance(results[1], RetriableSourceError)
