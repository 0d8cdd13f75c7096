"""Benchmark: N KR queries through SqlSource.fetch_many against the best plain way.

    python bench/bench_sql_batch.py [--n 2000] [--repeat 5]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--compare-with DIR]

It creates a synthetic warehouse on PostgreSQL (one indexed ``events`` table, 20 rows per
metric; dropped at the end) and times, on one connection and one thread:
  * pipelined: the fastest plain way, the baseline of the ratios: the queries straight to
    libpq through ``psycopg.pq`` in pipeline mode, ``SqlSource.max_batch`` a batch, each
    batch ``BEGIN``, its queries and ``COMMIT`` in one round trip (``bench_flow``'s
    ``LIBPQ_PIPELINE``, the best bare baseline of the flow's bench);
  * plain: psycopg's cursor, the N distinct queries in one read-only transaction, each
    executed and its one row fetched (one round trip per query);
  * batched: ``SqlSource.fetch_many`` in batches of ``SqlSource.max_batch``, as the flow
    hands them over (statement check, a savepoint per KR, session cleanup per batch);
  * single: ``SqlSource.fetch`` KR by KR (begin, query, rollback and cleanup each).
Each figure is the median of ``--repeat`` runs after a warm-up; it prints the ratios to
pipelined. ``--compare-with DIR`` runs the SqlSource figures a second time with the code of
another checkout (e.g. a ``git worktree`` of an older commit) for before/after figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_flow import LIBPQ_PIPELINE  # type: ignore[import-not-found]

ROWS_PER_METRIC = 20
BATCH = 50  # SqlSource.max_batch, as the flow hands KRs over
AS_OF = datetime(2026, 11, 15, tzinfo=UTC)


def query_for(i: int) -> str:
    """The distinct query of KR number ``i``."""
    return f"SELECT sum(value) FROM events WHERE metric_id = {i} AND ts < :as_of"


def create_warehouse(admin_url: str, metrics: int) -> str:
    """Create a fresh database holding ``metrics`` x 20 events; return its URL."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"bench_sql_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE events (metric_id int NOT NULL, ts timestamptz NOT NULL, "
                "value numeric NOT NULL)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO events SELECT m, timestamptz '2026-11-01' + (r || ' hours')::interval,"
                f" (m % 97) + r FROM generate_series(1, {metrics}) m, "
                f"generate_series(1, {ROWS_PER_METRIC}) r"
            )
        )
        conn.execute(sa.text("CREATE INDEX events_metric_ts ON events (metric_id, ts)"))
        conn.execute(sa.text("ANALYZE events"))
    engine.dispose()
    return url


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database named by ``url``."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


class PlainRunner:
    """The N queries through psycopg directly, in one read-only transaction."""

    def __init__(self, url: str, queries: list[str]) -> None:
        import psycopg

        dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = psycopg.connect(dsn)
        # The pipelined runs send their own BEGIN and COMMIT: a session of their own.
        self.auto = psycopg.connect(dsn, autocommit=True)
        self.auto.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        self.queries = [q.replace(":as_of", "%(as_of)s") for q in queries]
        self.time()  # warm-up

    def pipelined(self, batch: int) -> float:
        """Seconds for one run of the queries ``batch`` at a time through libpq's pipeline."""
        namespace: dict[str, Any] = {}
        exec(LIBPQ_PIPELINE, namespace)  # the bench's own code, shared with bench_flow
        send = namespace["pipelined"]
        numbered = [q.replace("%(as_of)s", "$1") for q in self.queries]
        started = time.perf_counter()
        for i in range(0, len(numbered), batch):
            send(self.auto, numbered[i : i + batch], AS_OF)
        return time.perf_counter() - started

    def time(self) -> float:
        """Seconds for one run."""
        params = {"as_of": AS_OF}
        started = time.perf_counter()
        self.conn.execute("BEGIN READ ONLY")
        cur = self.conn.cursor()
        for query in self.queries:
            cur.execute(query, params)
            cur.fetchone()
        self.conn.rollback()
        return time.perf_counter() - started

    def close(self) -> None:
        """Close the connections."""
        self.conn.close()
        self.auto.close()


SOURCE_CHILD = """
import json, sys, time
from datetime import datetime, UTC
from pydantic import SecretStr
from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.sql import SqlSource, SqlSourceConfig
from okr_pipeline.okr_core.settings import ConnectionSettings
url = sys.argv[1]
queries = json.loads(sys.stdin.readline())
ctx = SourceContext(as_of=datetime(2026, 11, 15, tzinfo=UTC),
                    cycle_start=datetime(2026, 10, 1, tzinfo=UTC),
                    cycle_end=datetime(2027, 1, 1, tzinfo=UTC), kr_ref="bench/kr")
env = SourceEnvironment(connections={"wh": ConnectionSettings(url=SecretStr(url),
                                                              max_concurrency=1)})
items = [(SqlSourceConfig(type="sql", connection="wh", query=q), ctx) for q in queries]
source = SqlSource(env)
size = SqlSource.max_batch

def batched():
    out = []
    for i in range(0, len(items), size):
        out += source.fetch_many(items[i:i + size])
    return out

def single():
    return [source.fetch(c, x) for c, x in items]

for run in (batched, single):  # warm-up, and a check that every KR was measured
    errors = [v for v in run() if isinstance(v, Exception) or v is None]
    assert not errors, errors[:3]
print("ready", flush=True)
for line in sys.stdin:
    run = batched if line.strip() == "batched" else single
    started = time.perf_counter()
    run()
    print(time.perf_counter() - started, flush=True)
source.close()
"""


class SourceRunner:
    """A child process timing SqlSource runs with the package code found in ``code``."""

    def __init__(self, url: str, queries: list[str], code: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SOURCE_CHILD, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(code)},
            cwd=code,
        )
        self._send(json.dumps(queries))
        assert self._receive() == "ready"

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def _receive(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def time(self, kind: str) -> float:
        """Seconds for one run of ``kind`` ("batched" or "single")."""
        self._send(kind)
        return float(self._receive())

    def close(self) -> None:
        """End the child."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="KR queries (default 2000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "OKR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--compare-with", type=Path, help="another checkout, for 'before'")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    url = create_warehouse(args.postgres, args.n)
    queries = [query_for(i + 1) for i in range(args.n)]
    codes = {"this code": here} | (
        {"compared code": args.compare_with.resolve()} if args.compare_with else {}
    )
    times: dict[tuple[str, str], list[float]] = {}
    try:
        plain_runner = PlainRunner(url, queries)
        runners = {label: SourceRunner(url, queries, code) for label, code in codes.items()}
        # Round robin, so that a busy machine slows every contender alike.
        for _ in range(args.repeat):
            times.setdefault(("plain", ""), []).append(plain_runner.time())
            pipelined = plain_runner.pipelined(BATCH)
            times.setdefault(("pipelined", ""), []).append(pipelined)
            for label, runner in runners.items():
                for kind in ("batched", "single"):
                    times.setdefault((label, kind), []).append(runner.time(kind))
        plain_runner.close()
        for runner in runners.values():
            runner.close()
    finally:
        drop_database(args.postgres, url)
    plain = statistics.median(times[("plain", "")])
    best = statistics.median(times[("pipelined", "")])
    now = {k: statistics.median(times[("this code", k)]) for k in ("batched", "single")}
    before = (
        {k: statistics.median(times[("compared code", k)]) for k in ("batched", "single")}
        if args.compare_with
        else None
    )
    n = args.n
    print(f"{n} KR queries on PostgreSQL, one connection, median of {args.repeat} runs")
    print(
        f"  pipelined libpq, {BATCH} a transaction        {best:7.3f} s  "
        f"{best / n * 1e6:6.0f} us/KR"
    )
    print(
        f"  plain psycopg, one read-only transaction  {plain:7.3f} s  {plain / n * 1e6:6.0f} us/KR"
        f"  x{plain / best:.2f} pipelined"
    )
    rows = [("this code", now)] + ([("compared code", before)] if before else [])
    for label, figures in rows:
        for kind in ("batched", "single"):
            seconds = figures[kind]
            print(
                f"  SqlSource {kind:<8} ({label:<13})      {seconds:7.3f} s  "
                f"{seconds / n * 1e6:6.0f} us/KR  x{seconds / best:.2f} pipelined"
            )
    if before:
        for kind in ("batched", "single"):
            print(f"  {kind}: this code / compared code = x{now[kind] / before[kind]:.2f}")


if __name__ == "__main__":
    main()
