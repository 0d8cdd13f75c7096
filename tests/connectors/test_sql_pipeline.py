"""The batch path below psycopg's cursors: the same SQL, parameters and values as a cursor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy.dialects.postgresql import asyncpg

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.sql import SqlSource, SqlSourceConfig
from okr_pipeline.connectors.sql_pipeline import numbered_sql, timestamptz
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.connectors.sql_helpers import guard_off, unchecked

# SQLAlchemy compiles text() to libpq's "$n" form for its asyncpg dialect (compiling only:
# the driver itself is never imported).
_DOLLAR_DIALECT = asyncpg.dialect()

QUERIES = [
    "SELECT count(*) FROM t WHERE ts < :as_of",
    "SELECT :as_of::date, x::int FROM t WHERE a = :cycle_start AND b < :cycle_end AND c < :as_of",
    r"SELECT '\:as_of' || :cycle_end",
    "SELECT 1 WHERE 'a:b' = 'a:b' AND c = :as_of_x",
    "SELECT :as_of:x",
    "SELECT v FROM t WHERE name LIKE 'a%' AND ts >= :cycle_start",
]


def sqlalchemy_numbered(query: str) -> tuple[str, tuple[str, ...]]:
    compiled = sa.text(query).compile(dialect=_DOLLAR_DIALECT)
    return str(compiled), tuple(compiled.positiontup or ())


@pytest.mark.parametrize("query", QUERIES)
def test_numbered_sql_agrees_with_sqlalchemy(query: str) -> None:
    assert numbered_sql(query) == sqlalchemy_numbered(query)


_FRAGMENTS = st.sampled_from(
    [":as_of", ":cycle_start", ":cycle_end", "::", ":", r"\:", "\\", "'", "%", "$1", " ", "x"]
)


@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=3)), max_size=12).map("".join))
def test_numbered_sql_agrees_with_sqlalchemy_on_any_text(query: str) -> None:
    assert numbered_sql(query) == sqlalchemy_numbered(query)


def test_times_bind_as_utc_text() -> None:
    berlin = datetime(2024, 5, 1, 14, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert timestamptz(berlin) == b"2024-05-01T12:00:00+00:00"


@pytest.fixture
def source(postgres_url: str) -> Iterator[SqlSource]:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (v integer, ts timestamptz, name text)")
        conn.exec_driver_sql(
            "INSERT INTO t VALUES (7, '2024-04-15T00:00:00Z', 'a%b'), (9, '2024-06-01Z', 'c')"
        )
    engine.dispose()
    env = SourceEnvironment(
        connections={"wh": ConnectionSettings(url=SecretStr(postgres_url), timeout_seconds=5)}
    )
    with SqlSource(env) as src:
        yield src


# Values of every kind a KR query returns, and parameters used every way a query may.
TYPED = [
    "SELECT v FROM t WHERE ts < :as_of",
    "SELECT sum(v) FROM t WHERE ts >= :cycle_start AND ts < :cycle_end",
    "SELECT count(*) FROM t WHERE ts < :as_of AND ts >= :cycle_start AND ts < :as_of",
    "SELECT 1234567890.123456789::numeric",
    "SELECT 2.5::float8",
    "SELECT 0.1::real",
    "SELECT 9007199254740993::bigint",
    "SELECT 3::smallint",
    "SELECT NULL::numeric",
    "SELECT 'NaN'::numeric",
    "SELECT extract(epoch FROM :as_of)",
    "SELECT extract(epoch FROM :cycle_end - :cycle_start)",
    r"SELECT length('\:as_of')",
    "SELECT count(*) FROM t WHERE name LIKE 'a%'",
    "SELECT 1 AS other, 5 AS value",
    "SELECT '12'::text",
    "SELECT true",
    "SELECT v FROM t",
    "SELECT v FROM t WHERE false",
]


@pytest.mark.postgres
def test_a_batch_reads_what_a_cursor_reads(source: SqlSource, ctx: SourceContext) -> None:
    configs = [(SqlSourceConfig(type="sql", connection="wh", query=q), ctx) for q in TYPED]
    alone: list[object] = []
    for config, context in configs:
        try:
            alone.append(source.fetch(config, context))
        except FatalSourceError as exc:
            alone.append(str(exc))
    batched = [str(r) if isinstance(r, Exception) else r for r in source.fetch_many(configs)]
    assert batched == alone
    # The values themselves, not only their agreement.
    assert batched[0] == 7 and batched[1] == 16 and batched[2] == 1
    assert str(batched[3]) == "1234567890.123456789"
    assert batched[10] == int(ctx.as_of.timestamp())
    assert batched[11] == int(timedelta(days=91).total_seconds())


@pytest.mark.postgres
def test_a_second_statement_is_refused_in_a_batch(
    source: SqlSource, ctx: SourceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard_off(monkeypatch)
    batch = [
        (unchecked("SELECT v FROM t WHERE ts < :as_of"), ctx),
        (unchecked("SELECT 1 AS value; SELECT 2"), ctx),
        (unchecked("SELECT v + 1 FROM t WHERE ts < :as_of"), ctx),
    ]
    first, second, third = source.fetch_many(batch)
    assert first == 7 and third == 8
    assert isinstance(second, FatalSourceError)
    assert "cannot insert multiple commands" in str(second)


@pytest.mark.postgres
def test_a_session_that_cannot_open_the_batch_is_not_trusted(
    source: SqlSource, ctx: SourceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BEGIN and SAVEPOINT fail only on a session in a bad state: the batch goes to a new
    # connection once, then its KRs fail with the database's words; no value is read.
    from okr_pipeline.connectors import sql_batch

    monkeypatch.setattr(sql_batch, "_BEGIN", (b"SELECT 1/0", None))
    configs = [(SqlSourceConfig(type="sql", connection="wh", query=q), ctx) for q in TYPED[:3]]
    results = source.fetch_many(configs)
    assert all(isinstance(r, Exception) and "division by zero" in str(r) for r in results)
