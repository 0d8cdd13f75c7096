"""Benchmark: the dashboard's overview of 10,000 KRs, against one plain SELECT of its rows.

    python bench/bench_ui.py [--krs 10000] [--requests 30] [--store-url URL] [--json]

What it does:
  * builds a store of one cycle with ``--krs`` KRs (5 per objective, objectives in a tree
    ten wide) and ``--as-ofs`` weekly runs, each with a measurement and an evaluation per
    KR, written straight into the tables (default: a SQLite file in a temporary folder;
    ``--store-url`` for PostgreSQL, an empty database);
  * serves the dashboard with uvicorn on a free port, in this process's thread (not timed)
    and asks for the overview ``--requests`` times over HTTP (``GET /``: the HTML page of the
    first 200 rows, with every objective's rolled-up score; and ``GET /api/overview``); the
    app keeps the cycle's rows while the store is unchanged;
  * stores new runs of every KR while it serves, and times the first ``GET /`` right after
    each (the request reads the cycle, or waits for the app's background read) and 8 s
    after (the background read has kept the page warm);
  * times the overview uncached (in this process: read, roll up, render);
  * times the baseline: the plainest fast read of the same rows, one SQL SELECT of every
    KR of the cycle with its latest evaluation and measurement, fetched into Python.
It prints the median and p95 of each, and overview/baseline. Target: the overview of
10,000 KRs answers in under 1 s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import sqlalchemy as sa
import uvicorn

from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.models import Cycle, KeyResult, Objective
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord
from okr_pipeline.okr_store.store import Store
from okr_pipeline.web.app import WARM_EVERY_SECONDS, create_app

KRS_PER_OBJECTIVE = 5
TREE_WIDTH = 10
CYCLE = "bench-cycle"
STATUSES = ("on_track", "at_risk", "off_track")


def build_store(url: str, krs: int, as_ofs: int, now: datetime) -> None:
    """One cycle of ``krs`` KRs with ``as_ofs`` weekly runs of measurements and evaluations."""
    rng = random.Random(7)
    store = Store.open(url)
    try:
        start, end = now - timedelta(days=7 * as_ofs + 3), now + timedelta(days=30)
        objectives = -(-krs // KRS_PER_OBJECTIVE)
        with store.engine.begin() as conn:
            cycle_id = conn.execute(
                sa.insert(Cycle).values(name=CYCLE, start_at=start, end_at=end, timezone="UTC")
            ).inserted_primary_key[0]
            conn.execute(
                sa.insert(Objective),
                [
                    {
                        "cycle_id": cycle_id,
                        "key": f"objective-{i:05d}",
                        "title": f"Objective number {i}",
                        "owner": f"team-{i % 50:02d}@example.com",
                        "type": "aspirational" if i % 3 else "committed",
                        "parent_key": None
                        if i < TREE_WIDTH
                        else f"objective-{i // TREE_WIDTH:05d}",
                        "success_level": None,
                        "archived_at": None,
                    }
                    for i in range(objectives)
                ],
            )
            ids = dict(conn.execute(sa.select(Objective.key, Objective.id)).all())
            conn.execute(
                sa.insert(KeyResult),
                [
                    {
                        "objective_id": ids[f"objective-{n // KRS_PER_OBJECTIVE:05d}"],
                        "key": f"kr-{n % KRS_PER_OBJECTIVE}",
                        "title": f"Key result {n}: from 100 to 200",
                        "unit": "users",
                        "kind": "increase",
                        "baseline": Decimal(100),
                        "baseline_auto": False,
                        "target": "200",
                        "target_value": Decimal(200),
                        "floor": None,
                        "weight": Decimal(1),
                        "schedule": "0 6 * * 1",
                        "source_json": {
                            "type": "sql",
                            "connection": "warehouse",
                            "query": "SELECT 1",
                        },
                        "source_type": "sql",
                        "definition_hash": f"{n:064d}",
                        "archived_at": None,
                        "alert_policy": None,
                    }
                    for n in range(krs)
                ],
            )
        kr_ids = [kr.kr_id for kr in store.active_key_results()]
        for week in range(as_ofs, 0, -1):
            write_run(store, kr_ids, now - timedelta(days=7 * (week - 1), minutes=5), rng)
    finally:
        store.close()


def write_run(store: Store, kr_ids: list[int], as_of: datetime, rng: random.Random) -> None:
    """One run measuring and evaluating every KR as of ``as_of``."""
    run_id = store.start_run(as_of)
    measurements, evaluations = [], []
    for kr_id in kr_ids:
        value = Decimal(100 + rng.randint(0, 150))
        progress = float(value - 100) / 100
        measurements.append(MeasurementRecord(kr_id, as_of, as_of, "ok", value))
        evaluations.append(
            EvaluationRecord(
                kr_id,
                as_of,
                rng.choice(STATUSES),
                value=value,
                progress=progress,
                score=max(0.0, min(1.0, progress)),
                expected_progress=0.6,
                reason=f"progress {progress:.2f} vs pace 0.60",
            )
        )
    store.record_results(run_id, measurements, evaluations, replacing=None)
    store.finish_run(run_id, {"total": len(kr_ids), "ok": len(kr_ids), "no_data": 0, "error": 0})


def time_after_runs(url: str, base: str, waits: list[float]) -> list[float]:
    """The first GET / after a new run is stored, after waiting each of ``waits`` seconds.

    Waiting 0 s times a request that reads the cycle itself (or waits for the app's
    background read to finish); waiting longer than the app's check interval times the
    page as people see it after a scheduled run.
    """
    store = Store.open(url)
    rng = random.Random(11)
    times = []
    try:
        kr_ids = [kr.kr_id for kr in store.active_key_results()]
        with httpx.Client(base_url=base, timeout=60) as client:
            for wait in waits:
                write_run(store, kr_ids, datetime.now(UTC).replace(microsecond=0), rng)
                time.sleep(wait)
                began = time.perf_counter()
                client.get("/").raise_for_status()
                times.append(time.perf_counter() - began)
    finally:
        store.close()
    return times


BASELINE_SQL = """
SELECT k.id, o.key, k.key, k.title, o.owner, k.unit, k.target_value, e.value, e.progress,
       e.score, e.status, e.reason, e.evaluated_at, m.measured_at
FROM key_results k
JOIN objectives o ON o.id = k.objective_id
JOIN cycles c ON c.id = o.cycle_id
LEFT JOIN evaluations e ON e.kr_id = k.id
     AND e.evaluated_at = (SELECT max(evaluated_at) FROM evaluations WHERE kr_id = k.id)
LEFT JOIN measurements m ON m.kr_id = k.id AND m.as_of = e.evaluated_at
WHERE c.name = :cycle AND k.archived_at IS NULL AND o.archived_at IS NULL
"""


def time_baseline(url: str, repeats: int) -> tuple[list[float], int]:
    """Times of one SELECT of every KR's latest state into Python, and the rows it read."""
    engine = sa.create_engine(url)
    times, rows = [], 0
    try:
        with engine.connect() as conn:
            for _ in range(repeats):
                began = time.perf_counter()
                rows = len(conn.execute(sa.text(BASELINE_SQL), {"cycle": CYCLE}).all())
                times.append(time.perf_counter() - began)
    finally:
        engine.dispose()
    return times, rows


def time_requests(base: str, path: str, repeats: int) -> list[float]:
    """Times of ``repeats`` GETs of ``path`` (after one warm-up), each checked to be 200."""
    times = []
    with httpx.Client(base_url=base, timeout=60) as client:
        client.get(path).raise_for_status()
        for _ in range(repeats):
            began = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - began)
            response.raise_for_status()
    return times


def time_cold(url: str, repeats: int) -> list[float]:
    """Times of building and rendering the overview with nothing cached (a changed store)."""
    from okr_pipeline.web.overview import overview
    from okr_pipeline.web.pages import render_overview

    store = Store.open(url)
    times = []
    try:
        for _ in range(repeats):
            began = time.perf_counter()
            render_overview(overview(store))
            times.append(time.perf_counter() - began)
    finally:
        store.close()
    return times


def serve(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    """The dashboard on a free port, in a thread; returns once it answers."""
    from okr_pipeline.web.server import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def summary(times: list[float]) -> dict[str, float]:
    """Median and 95th percentile, in milliseconds."""
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000}


def main() -> None:
    """Build the store, time the overview and the baseline, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--krs", type=int, default=10_000)
    parser.add_argument("--as-ofs", type=int, default=4, help="weekly runs in the store")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--cold", type=int, default=5, help="uncached overviews to time")
    parser.add_argument("--store-url", help="an empty database (default: SQLite, temporary)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.store_url or f"sqlite:///{Path(folder) / 'okr.db'}"
        now = datetime.now(UTC).replace(microsecond=0)
        began = time.perf_counter()
        build_store(url, args.krs, args.as_ofs, now)
        built = time.perf_counter() - began
        settings = Settings(project_dir=Path(folder), store_url=url)
        server, thread, base = serve(settings)
        try:
            page = time_requests(base, "/", args.requests)
            api = time_requests(base, "/api/overview", args.requests)
            after_run = time_after_runs(url, base, [0.0] * 3)
            after_warm = time_after_runs(url, base, [WARM_EVERY_SECONDS + 3] * 3)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        baseline, rows = time_baseline(url, args.requests)
        cold = time_cold(url, args.cold)
    result = {
        "krs": args.krs,
        "rows_read_by_baseline": rows,
        "store": sa.make_url(url).get_backend_name(),
        "store_built_s": round(built, 1),
        "overview_html": summary(page),
        "overview_api": summary(api),
        "overview_cold": summary(cold),
        "first_get_right_after_a_run": summary(after_run),
        "first_get_after_a_run_once_warmed": summary(after_warm),
        "baseline_select": summary(baseline),
    }
    for name in ("overview_html", "overview_cold"):
        result[f"ratio_{name}_to_baseline"] = (
            result[name]["median_ms"] / result["baseline_select"]["median_ms"]
        )
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    print(f"{args.krs} KRs in a {result['store']} store (built in {built:.1f} s)")
    for name, label in (
        ("overview_html", "GET / (HTML, 200 rows)"),
        ("overview_api", "GET /api/overview"),
        ("overview_cold", "uncached (store changed)"),
        ("first_get_right_after_a_run", "GET / right after a run"),
        ("first_get_after_a_run_once_warmed", "GET / 8 s after a run"),
        ("baseline_select", "baseline: one SELECT"),
    ):
        figures = result[name]
        print(
            f"  {label:<28} median {figures['median_ms']:7.1f} ms   p95 {figures['p95_ms']:7.1f} ms"
        )
    print(
        f"  overview / baseline: {result['ratio_overview_html_to_baseline']:.2f}x served, "
        f"{result['ratio_overview_cold_to_baseline']:.2f}x uncached (target: under 1 s)"
    )


if __name__ == "__main__":
    main()
