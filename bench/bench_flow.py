"""Benchmark: the update flow against the same queries run bare, at 1,000 and 10,000 KRs.

    python bench/bench_flow.py [--sizes 1000 10000] [--concurrency 8] [--json] [--repeat 3]
        [--history-days 45] [--query-delay-ms 2]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

What it does, once per run of the script:
  * creates a synthetic warehouse on PostgreSQL (one ``events`` table, 20 rows per metric)
    and a store database, both fresh and dropped at the end;
  * starts a Prefect server (not timed) and points the flow at it.
For each size N it writes N SQL KRs with distinct queries, syncs them with a first flow run
(reported as "first run", not the headline), with ``--history-days D`` gives every KR D
daily values before now (a run mid-cycle reads and forecasts from them; by default none,
as right after a first run), with ``--query-delay-ms M`` makes every query (the flow's and
the baselines' alike) wait M ms on the server, as a slower warehouse's do, then times, each
in a fresh process and, but naive bare (and the first run), three times (``--repeat``),
interleaved, reporting the median try:
  * best bare: the fastest plain way a skilled user would run the same N queries without
    the product: one connection per thread of the same concurrency, each opened read-only
    with the statement timeout, the queries in batches of 50, each batch (``BEGIN``, its
    queries, ``COMMIT``) sent at once straight to libpq in pipeline mode through psycopg's
    public ``psycopg.pq`` wrapper (one round trip per batch, none of a cursor's Python per
    statement; the flow sends its batches the same way). This is the baseline of the
    headline ratio;
  * cursor bare: the same batches through psycopg's cursors in its pipeline mode (the best
    bare baseline until this bench found the one above 3 to 5 times faster);
  * batched bare: the same through cursors without the pipeline (one round trip per query);
  * naive bare: the same queries through one SQLAlchemy engine and a thread pool, one
    connection checkout (and transaction) per query, as the first version of this bench did;
  * same work: what the flow does, done the fastest plain way: the KRs' queries, baselines
    and targets read from the store in one query, the queries run as best bare runs them,
    each KR's progress, score and status computed, one row a KR written by COPY in one
    transaction (still less than the flow: no history, forecast, alerts or artifacts);
  * flow: one ``update_key_results`` run measuring all N KRs, started as ``okr run`` starts
    it (``flows.update.update_here``: in this process, without Prefect's heartbeat thread;
    definitions unchanged, as in a scheduled run): fetch, score, store in batches, publish
    the artifact. Its time by step is read back from the Prefect API afterwards (each task
    run's duration, and the rest of the flow run);
  * Prefect's floor: an empty flow run against the same server (what any flow run costs:
    creating it, its Running and Completed states), and the flow's shape without its work
    (the same five task runs and artifact calls, doing nothing). Best bare plus the first
    is the least any flow run could take here: flow / best bare cannot go below
    1 + empty / best bare, however fast the flow's own work.
It prints flow / best bare (target at 10,000: 1.5 or less) and flow / same work, the peak
memory of each process, the first run and its setup step (parse, check, sync: the
``load-definitions`` task), the flow's time by step and Prefect's floor; ``--json`` prints
one JSON object per size instead, with ``krs``, ``flow_s``, ``best_bare_s``,
``cursor_bare_s``, ``batched_bare_s``, ``naive_bare_s``, ``same_work_s``,
``flow_over_best_bare``, ``flow_over_same_work``, ``flow_peak_mib``, ``best_bare_peak_mib``,
``prefect_empty_flow_s``, ``prefect_skeleton_s``, ``lowest_possible_ratio`` (1 + empty /
best bare), ``lowest_ratio_of_this_shape`` (1 + skeleton / best bare), ``first_run_s``,
``first_run_setup_s`` and ``flow_steps_s`` (seconds by step).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from okr_pipeline.flows.prefect_server import local_prefect_server

HERE = Path(__file__).resolve().parent
ROWS_PER_METRIC = 20
KRS_PER_OBJECTIVE = 5


def create_database(admin_url: str, prefix: str) -> str:
    """Create a fresh database next to ``admin_url``'s and return its URL."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database named by ``url``."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def build_warehouse(url: str, metrics: int) -> None:
    """One indexed table of ``metrics`` x 20 rows of synthetic events."""
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
                "INSERT INTO events SELECT m, now() - (r || ' hours')::interval, (m % 97) + r "
                f"FROM generate_series(1, {metrics}) m, generate_series(1, {ROWS_PER_METRIC}) r"
            )
        )
        conn.execute(sa.text("CREATE INDEX events_metric_ts ON events (metric_id, ts)"))
        conn.execute(sa.text("ANALYZE events"))
    engine.dispose()


def waiting(delay_ms: float) -> str:
    """What a query joins to wait ``delay_ms`` on the server ("" for none): ``pg_sleep``."""
    return f", pg_sleep({delay_ms / 1000})" if delay_ms else ""


def query_for(i: int, delay_ms: float = 0.0) -> str:
    """The distinct query of KR number ``i``, waiting ``delay_ms`` on the server."""
    return f"SELECT sum(value) FROM events{waiting(delay_ms)} WHERE metric_id = {i} AND ts < :as_of"


def with_delay(code: str, delay_ms: float) -> str:
    """A bare child's code, its queries waiting ``delay_ms`` each as the KRs' do."""
    return code.replace("FROM events WHERE", f"FROM events{waiting(delay_ms)} WHERE")


def add_history(store: str, days: int) -> None:
    """Give every KR one good value a day for the ``days`` days before now.

    As a scheduled daily run leaves them (values rising towards the target), written in
    one statement under the first run's id: what a later run reads and forecasts from.
    """
    if days <= 0:
        return
    engine = sa.create_engine(store)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO measurements (kr_id, run_id, measured_at, as_of, value, outcome, "
                "kind) SELECT k.id, r.id, now() - d * interval '1 day', "
                "now() - d * interval '1 day', greatest(0, 300 - 3 * d), 'ok', 'measured' "
                "FROM key_results k CROSS JOIN generate_series(1, :days) AS d "
                "CROSS JOIN (SELECT max(id) AS id FROM runs) AS r"
            ),
            {"days": days},
        )
    engine.dispose()


def write_project(
    folder: Path, size: int, warehouse: str, store: str, concurrency: int, delay_ms: float = 0.0
) -> None:
    """An OKR project of ``size`` SQL KRs, settings in okr.toml (queries wait ``delay_ms``)."""
    okrs = folder / "okrs"
    okrs.mkdir(parents=True)
    per_file = 1000
    for f in range(0, size, per_file):
        lines = [
            "cycle: {name: bench, start: 2026-10-01, end: 2026-12-31}",
            "objectives:",
        ]
        for o in range(f, min(size, f + per_file), KRS_PER_OBJECTIVE):
            lines += [
                f"  - id: obj-{o}",
                f"    title: Objective {o}",
                "    owner: bench@example.com",
                "    key_results:",
            ]
            for i in range(o, min(size, o + KRS_PER_OBJECTIVE)):
                lines += [
                    f"      - id: kr-{i}",
                    f"        title: Metric {i}",
                    "        baseline: 0",
                    "        target: 400",
                    "        source:",
                    "          type: sql",
                    "          connection: warehouse",
                    f'          query: "{query_for(i + 1, delay_ms)}"',
                ]
        (okrs / f"bench-{f // per_file:03d}.yaml").write_text("\n".join(lines) + "\n")
    (folder / "okr.toml").write_text(
        textwrap.dedent(f"""\
        store_url = "{store}"
        max_concurrency = {concurrency}

        [connections.warehouse]
        url = "{warehouse}"
        max_concurrency = {concurrency}
        """)
    )


FLOW_CHILD = """
import json, resource, sys, time
from okr_pipeline.flows.update import update_here
project = sys.argv[1]
started = time.perf_counter()
state = update_here(project_dir=project, all_krs=True, return_state=True)
seconds = time.perf_counter() - started
summary = state.result()
print(json.dumps({"seconds": seconds, "measured": summary.measured, "errors": summary.errors,
                  "synced": summary.definitions_synced,
                  "flow_run_id": str(state.state_details.flow_run_id),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BARE_CHILD = """
import json, resource, sys, time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
import sqlalchemy as sa

from okr_pipeline.flows.prefect_server import local_prefect_server
url, size, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
engine = sa.create_engine(url, pool_size=concurrency, max_overflow=0)
as_of = datetime.now(timezone.utc)
queries = [sa.text(f"SELECT sum(value) FROM events WHERE metric_id = {i} AND ts < :as_of")
           for i in range(1, size + 1)]
def run(q):
    with engine.connect() as conn:
        return conn.execute(q, {"as_of": as_of}).scalar_one()
started = time.perf_counter()
with ThreadPoolExecutor(max_workers=concurrency) as pool:
    values = list(pool.map(run, queries))
seconds = time.perf_counter() - started
assert len(values) == size
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib}))
"""


#: The bare baselines: psycopg directly, one connection per thread, each session read-only
#: with its statement timeout, the queries in batches of 50 per read-only transaction;
#: ``{send_batch}`` is how a batch goes to the server, after ``{prelude}`` (code), with
#: the queries' as-of written ``{as_of}`` (a cursor's ``%(as_of)s``, libpq's ``$1``).
_BARE_CHILD = """
import json, resource, sys, time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
import psycopg
import sqlalchemy as sa
{prelude}
url, size, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
as_of = datetime.now(timezone.utc)
queries = [f"SELECT sum(value) FROM events WHERE metric_id = {i} AND ts < {as_of}"
           for i in range(1, size + 1)]
BATCH = 50
batches = [queries[i:i + BATCH] for i in range(0, size, BATCH)]
shares = [batches[t::concurrency] for t in range(concurrency)]
def work(share):
    out = []
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        conn.execute("SET statement_timeout = '30s'")
        conn.commit()
        for batch in share:
{send_batch}    return out
started = time.perf_counter()
with ThreadPoolExecutor(max_workers=concurrency) as pool:
    values = [v for part in pool.map(work, shares) for v in part]
seconds = time.perf_counter() - started
assert len(values) == size
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib}))
"""

#: The issue's first honest baseline: one round trip per query. Kept for comparison
#: (``batched_bare_s``).
_CURSOR_CHILD = _BARE_CHILD.replace("{prelude}", "").replace("{as_of}", "%(as_of)s")

BATCHED_BARE_CHILD = _CURSOR_CHILD.replace(
    "{send_batch}",
    """\
            with conn.transaction():
                for q in batch:
                    out.append(conn.execute(q, {"as_of": as_of}).fetchone()[0])
""",
)

#: Each batch's 50 queries sent at once through psycopg's cursors in its pipeline mode (one
#: round trip per batch). The best bare baseline until this bench found the one below
#: 3 to 5 times faster; kept for comparison (``cursor_bare_s``).
CURSOR_BARE_CHILD = _CURSOR_CHILD.replace(
    "{send_batch}",
    """\
            with conn.transaction():
                with conn.pipeline():
                    cursors = [conn.execute(q, {"as_of": as_of}) for q in batch]
                out.extend(cursor.fetchone()[0] for cursor in cursors)
""",
)

#: Queries sent the fastest plain way: straight to libpq through psycopg's public wrapper
#: of it (``psycopg.pq``), in pipeline mode. A batch is ``BEGIN``, its queries (one
#: ``PQsendQueryParams`` each, the as-of a text ``timestamptz``) and ``COMMIT``, sent at
#: once and read back as they come: one round trip, and none of a cursor's tens of
#: microseconds of Python per statement. ``pipelined(conn, sqls, as_of)`` returns each
#: query's value as a ``Decimal``, as a cursor would; ``conn`` has no transaction open.
LIBPQ_PIPELINE = """
import selectors
from decimal import Decimal
from psycopg import pq
AS_OF_TYPE = [1184]  # timestamptz
def _results(pg):
    out, current = [], None
    with selectors.DefaultSelector() as selector:
        selector.register(pg.socket, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while True:
            pending = pg.flush()
            wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            selector.modify(pg.socket, wanted)
            selector.select(1.0)
            pg.consume_input()
            while not pg.is_busy():
                result = pg.get_result()
                if result is None:
                    if current is None:
                        break
                    out.append(current)
                    current = None
                elif result.status == pq.ExecStatus.PIPELINE_SYNC:
                    return out
                else:
                    current = result
def pipelined(conn, sqls, as_of):
    pg = conn.pgconn
    as_of_text = [as_of.isoformat().encode()]
    pg.enter_pipeline_mode()
    try:
        pg.send_query_params(b"BEGIN", None)
        for sql in sqls:
            pg.send_query_params(sql.encode(), as_of_text, param_types=AS_OF_TYPE)
        pg.send_query_params(b"COMMIT", None)
        pg.pipeline_sync()
        results = _results(pg)
    finally:
        pg.exit_pipeline_mode()
    values = []
    for result in results[1:-1]:
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise RuntimeError(result.error_message.decode())
        value = result.get_value(0, 0)
        values.append(None if value is None else Decimal(value.decode()))
    return values
"""

#: The best bare baseline, the headline's: the queries sent as :data:`LIBPQ_PIPELINE` sends
#: them, 50 a batch, over one read-only connection per thread (idle between batches: each
#: brings its own ``BEGIN`` and ``COMMIT``).
BEST_BARE_CHILD = (
    _BARE_CHILD.replace("{prelude}", LIBPQ_PIPELINE)
    .replace("{as_of}", "$1")
    .replace(
        "{send_batch}",
        """\
            out.extend(pipelined(conn, batch, as_of))
""",
    )
)

#: The same work as the flow, done the fastest plain way (``same_work_s``): read the KRs'
#: queries, baselines and targets from the store in one query, run the queries as best bare
#: does, compute each KR's progress, score and status, and COPY one row a KR into a table
#: of its own (primary key on KR and as-of) in one transaction. It still does less than the
#: flow: no history, forecast, staleness, alerts, artifacts or orchestration.
SAME_WORK_CHILD = (
    """
import json, resource, sys, time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
import psycopg
import sqlalchemy as sa
"""
    + LIBPQ_PIPELINE
    + """
store_url, warehouse_url, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
def dsn(url):
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
with psycopg.connect(dsn(store_url), autocommit=True) as conn:
    conn.execute("DROP TABLE IF EXISTS plain_results")
    conn.execute("CREATE TABLE plain_results (kr_id int, as_of timestamptz, value numeric, "
                 "progress float8, score float8, status text, PRIMARY KEY (kr_id, as_of))")
as_of = datetime.now(timezone.utc)
BATCH = 50
def work(share):
    out = []
    with psycopg.connect(dsn(warehouse_url), autocommit=True) as conn:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        conn.execute("SET statement_timeout = '30s'")
        for batch in share:
            values = pipelined(conn, [q for _, q in batch], as_of)
            out.extend((kr_id, value) for (kr_id, _), value in zip(batch, values))
    return out
started = time.perf_counter()
with psycopg.connect(dsn(store_url)) as store:
    krs = store.execute(
        "SELECT k.id, k.source_json->>'query', k.baseline, k.target_value, c.start_at, c.end_at "
        "FROM key_results k JOIN objectives o ON o.id = k.objective_id "
        "JOIN cycles c ON c.id = o.cycle_id "
        "WHERE k.archived_at IS NULL AND o.archived_at IS NULL").fetchall()
    queries = [(k[0], k[1].replace(":as_of", "$1")) for k in krs]
    batches = [queries[i:i + BATCH] for i in range(0, len(queries), BATCH)]
    shares = [batches[t::concurrency] for t in range(concurrency)]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        values = dict(v for part in pool.map(work, shares) for v in part)
    rows = []
    for kr_id, _, baseline, target, start, end in krs:
        value = values[kr_id]
        progress = float((value - baseline) / (target - baseline))
        expected = (as_of - start) / (end - start)
        status = "on_track" if progress >= 0.7 * expected else "at_risk"
        rows.append((kr_id, as_of, value, progress, min(1.0, max(0.0, progress)), status))
    with store.cursor() as cursor, cursor.copy(
        "COPY plain_results (kr_id, as_of, value, progress, score, status) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)
seconds = time.perf_counter() - started
assert len(rows) == int(sys.argv[4])
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib}))
"""
)

#: What Prefect itself costs a run on this machine, whatever the run does
#: (``prefect_empty_flow_s``): one flow run of a flow that does nothing, started as the
#: flow is (in this process, heartbeat off) against the same server. It creates the flow
#: run and sets its Running and Completed states: round trips to the server that any flow
#: run makes. With it, ``prefect_skeleton_s``: the flow's own shape with no work in it,
#: the same five task runs and the same artifact calls (the progress artifact created and
#: updated, the table and the summary). No flow run can take less than the first; the
#: flow as it is built cannot take less than the second.
FLOOR_CHILD = """
import json, sys, time
from prefect import flow
from prefect.artifacts import (create_markdown_artifact, create_progress_artifact,
                               create_table_artifact, update_progress_artifact)
from okr_pipeline.flows.update import as_task, run_here
skeleton = sys.argv[1] == "skeleton"
def nothing():
    return None
def progress():
    artifact = create_progress_artifact(0.0, key="bench-progress", description="0 of 0")
    update_progress_artifact(artifact, 100.0, description="0 of 0")
def publish():
    create_table_artifact([{"kr": "bench", "status": "on_track"}], key="bench-table")
    create_markdown_artifact("bench", key="bench-summary")
@flow(name="bench-prefect-floor", log_prints=False)
def floor():
    if skeleton:
        as_task("load-definitions", nothing)()
        as_task("fetch-values", progress)()
        as_task("evaluate-and-store", nothing)()
        as_task("send-alerts", nothing)()
        as_task("publish-results", publish)()
started = time.perf_counter()
run_here(floor)  # as the flow is started: update_here(...) is run_here(update_key_results, ...)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""

#: Where a flow run's time went, read back from the Prefect API: each task run's
#: duration, and the rest of the flow run (Prefect's flow and task orchestration, opening
#: the store, recording the run).
PROFILE_CHILD = """
import json, sys, time
from uuid import UUID
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
flow_run_id, flow_seconds = UUID(sys.argv[1]), float(sys.argv[2])
with get_client(sync_client=True) as client:
    for _ in range(50):  # task run states arrive as events: wait until all are final
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        if runs and all(run.end_time is not None for run in runs):
            break
        time.sleep(0.2)
steps = {}
for run in runs:
    name = run.name.rsplit("-", 1)[0]
    if run.start_time and run.end_time:
        steps[name] = steps.get(name, 0.0) + (run.end_time - run.start_time).total_seconds()
steps["outside task runs"] = flow_seconds - sum(steps.values())
print(json.dumps({name: round(seconds, 3) for name, seconds in steps.items()}))
"""


def median_try(tries: list[dict[str, Any]]) -> dict[str, Any]:
    """The try of median time (the lower middle one of an even number)."""
    ordered = sorted(tries, key=lambda t: float(t["seconds"]))
    return ordered[(len(ordered) - 1) // 2]


def run_child(code: str, *args: str, env: dict[str, str]) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter and return the JSON it prints last."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """Run the benchmark with the sizes and concurrency given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "OKR_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin URL of the PostgreSQL server to create the databases on",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per size, nothing else"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="tries of each timed step but naive bare, interleaved; the median is reported",
    )
    parser.add_argument(
        "--history-days",
        type=int,
        default=0,
        help="before the timed run, give every KR this many daily values in the store (a "
        "run mid-cycle reads and forecasts from them); default 0, as after a first run",
    )
    parser.add_argument(
        "--query-delay-ms",
        type=float,
        default=0.0,
        help="make every query, the flow's and the baselines' alike, wait this long on the "
        "server (pg_sleep), as a slower warehouse's would; default 0",
    )
    args = parser.parse_args()
    say = (lambda *_: None) if args.json else print
    delay = args.query_delay_ms
    naive_child, batched_child, cursor_child, best_child = (
        with_delay(code, delay)
        for code in (BARE_CHILD, BATCHED_BARE_CHILD, CURSOR_BARE_CHILD, BEST_BARE_CHILD)
    )
    work = Path(tempfile.mkdtemp(prefix="okr-bench-"))
    warehouse = create_database(args.postgres, "okr_bench_wh")
    stores: list[str] = []
    stack = contextlib.ExitStack()
    try:
        say(f"building the warehouse ({max(args.sizes)} metrics x {ROWS_PER_METRIC} rows)...")
        build_warehouse(warehouse, max(args.sizes))
        os.environ["PREFECT_HOME"] = str(work / "prefect-home")
        api = stack.enter_context(local_prefect_server())
        env = {
            **os.environ,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(work / "prefect-home"),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        if delay:
            say(f"every query waits {delay:g} ms on the server (pg_sleep)")
        say(
            f"{'KRs':>7} {'best bare s':>11} {'cursor bare s':>13} {'batched bare s':>14} "
            f"{'naive bare s':>12} "
            f"{'same work s':>11} {'flow s':>8} {'flow/best':>9} {'flow/same':>9} "
            f"{'flow MiB':>9} {'first run s':>11} {'(setup s)':>9}"
        )
        profiles: dict[int, dict[str, float]] = {}
        floors: dict[int, dict[str, Any]] = {}
        for size in args.sizes:
            store = create_database(args.postgres, "okr_bench_store")
            stores.append(store)
            project = work / f"project-{size}"
            write_project(project, size, warehouse, store, args.concurrency, delay)
            first = run_child(FLOW_CHILD, str(project), env=env)  # parses and syncs
            add_history(store, args.history_days)
            naive = run_child(naive_child, warehouse, str(size), str(args.concurrency), env=env)
            bare = (warehouse, str(size), str(args.concurrency))
            kinds = ("batched", "cursor", "best", "same", "empty", "skeleton")
            tries: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
            flows: list[dict[str, Any]] = []
            # Interleaved, so that a slow minute of the machine slows each of them alike.
            for _ in range(args.repeat):
                tries["batched"].append(run_child(batched_child, *bare, env=env))
                tries["cursor"].append(run_child(cursor_child, *bare, env=env))
                tries["best"].append(run_child(best_child, *bare, env=env))
                tries["same"].append(
                    run_child(
                        SAME_WORK_CHILD, store, warehouse, str(args.concurrency), str(size), env=env
                    )
                )
                tries["empty"].append(run_child(FLOOR_CHILD, "empty", env=env))
                tries["skeleton"].append(run_child(FLOOR_CHILD, "skeleton", env=env))
                flow = run_child(FLOW_CHILD, str(project), env=env)
                if flow["measured"] != size or flow["errors"] or flow["synced"]:
                    raise SystemExit(f"unexpected flow result at {size} KRs: {flow}")
                flows.append(flow)
            batched, cursor, best, same, empty, skeleton = (
                median_try(tries[kind]) for kind in kinds
            )
            flow = median_try(flows)
            steps = run_child(
                PROFILE_CHILD, str(flow["flow_run_id"]), str(flow["seconds"]), env=env
            )
            first_steps = run_child(
                PROFILE_CHILD, str(first["flow_run_id"]), str(first["seconds"]), env=env
            )
            figures = {
                "krs": size,
                "flow_s": round(flow["seconds"], 3),
                "best_bare_s": round(best["seconds"], 3),
                "naive_bare_s": round(naive["seconds"], 3),
                "batched_bare_s": round(batched["seconds"], 3),
                "cursor_bare_s": round(cursor["seconds"], 3),
                "flow_over_best_bare": round(flow["seconds"] / best["seconds"], 2),
                "flow_peak_mib": round(flow["peak_mib"]),
                "best_bare_peak_mib": round(best["peak_mib"]),
                "same_work_s": round(same["seconds"], 3),
                "flow_over_same_work": round(flow["seconds"] / same["seconds"], 2),
                "prefect_empty_flow_s": round(empty["seconds"], 3),
                "prefect_skeleton_s": round(skeleton["seconds"], 3),
                # The least flow / best bare any flow run could show here, and the least
                # the flow's shape could (its work free): Prefect's share of the ratio.
                "lowest_possible_ratio": round(1 + empty["seconds"] / best["seconds"], 2),
                "lowest_ratio_of_this_shape": round(1 + skeleton["seconds"] / best["seconds"], 2),
                "first_run_s": round(first["seconds"], 3),
                # Parsing the YAML, checking every source, syncing, reading the KRs back.
                "first_run_setup_s": first_steps.get("load-definitions"),
                "flow_steps_s": steps,
                "query_delay_ms": delay,
            }
            if args.json:
                print(json.dumps(figures), flush=True)
                continue
            print(
                f"{size:>7} {best['seconds']:>11.2f} {cursor['seconds']:>13.2f} "
                f"{batched['seconds']:>14.2f} "
                f"{naive['seconds']:>12.2f} {same['seconds']:>11.2f} {flow['seconds']:>8.2f} "
                f"{figures['flow_over_best_bare']:>9.2f} {figures['flow_over_same_work']:>9.2f} "
                f"{flow['peak_mib']:>9.0f} {first['seconds']:>11.2f} "
                f"{first_steps.get('load-definitions', 0.0):>9.2f}"
            )
            profiles[size] = steps
            floors[size] = figures
        for size, steps in profiles.items():
            print(
                f"\nflow at {size} KRs, by step (s): "
                + ", ".join(f"{name} {seconds:.2f}" for name, seconds in steps.items())
            )
        for size, figures in floors.items():
            print(
                f"\nPrefect's floor at {size} KRs: an empty flow run "
                f"{figures['prefect_empty_flow_s']:.2f} s, the flow's shape without its work "
                f"{figures['prefect_skeleton_s']:.2f} s; so no flow run can be under "
                f"{figures['lowest_possible_ratio']:.2f} x best bare, and this flow's shape "
                f"not under {figures['lowest_ratio_of_this_shape']:.2f} x"
            )
    finally:
        stack.close()
        for url in [warehouse, *stores]:
            drop_database(args.postgres, url)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
