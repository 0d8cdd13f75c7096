"""A run keeps no idle session beyond the slots it holds: lanes close theirs as they end."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from okr_pipeline.connectors.base import SourceEnvironment
from okr_pipeline.connectors.sql_engine import LanePool, close_idle_connection, create_engine
from okr_pipeline.okr_core.settings import ConnectionSettings
from okr_pipeline.run.fetch import FetchRequest, SourcePool, fetch_all

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _sessions(admin: sa.Engine, url: str) -> int:
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db")
    with admin.connect() as conn:
        return int(conn.execute(query, {"db": make_url(url).database}).scalar_one())


def _sessions_after_close(admin: sa.Engine, url: str) -> int:
    """The sessions left once closed ones are gone: a backend leaves pg_stat_activity a
    moment after its client closed the connection, not at once."""
    deadline = time.monotonic() + 10
    while (count := _sessions(admin, url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_lanes_close_what_they_leave_idle(postgres_admin: sa.Engine, postgres_url: str) -> None:
    env = SourceEnvironment(
        connections={"warehouse": ConnectionSettings(url=postgres_url, max_concurrency=4)}
    )
    source = {"type": "sql", "connection": "warehouse", "query": "SELECT 1 FROM pg_sleep(0.002)"}
    requests = [FetchRequest(i, f"o/kr-{i}", source, NOW, NOW, NOW) for i in range(400)]
    # The run's pool stays open after the fetch, as in the flow (baselines, then values).
    with SourcePool(env) as pool:
        results = fetch_all(requests, env, max_concurrency=8, clock=lambda: NOW, pool=pool)
        assert all(r.ok for r in results)
        # Every lane's slot went back, its session closed (the pool holds none either).
        assert _sessions_after_close(postgres_admin, postgres_url) == 0
        # ... and the pool opens sessions again for the next fetch.
        again = fetch_all(requests[:10], env, max_concurrency=8, clock=lambda: NOW, pool=pool)
        assert all(r.ok for r in again)


def test_close_idle_connection_closes_one_idle_connection(postgres_url: str) -> None:
    engine = create_engine(ConnectionSettings(url=postgres_url, max_concurrency=3))
    try:
        assert isinstance(engine.pool, LanePool)
        connections = [engine.connect() for _ in range(3)]
        for conn in connections:
            conn.close()  # back to the pool, idle
        assert engine.pool.checkedin() == 3
        assert close_idle_connection(engine)
        assert engine.pool.checkedin() == 2
        with engine.connect():  # takes one of the two idle: in use, never closed under it
            assert close_idle_connection(engine)
            assert not close_idle_connection(engine)
            assert engine.pool.checkedout() == 1
        # The pool may open up to its size again.
        more = [engine.connect() for _ in range(3)]
        for conn in more:
            conn.close()
    finally:
        engine.dispose()


def test_a_pool_that_keeps_no_connections_has_none_to_close() -> None:
    engine = create_engine(ConnectionSettings(url="sqlite://", max_concurrency=2))
    try:
        assert not close_idle_connection(engine)
    finally:
        engine.dispose()
