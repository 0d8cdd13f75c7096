"""Benchmark: a run of 50,000 SQL KRs split into two shards over two local Prefect workers.

    python bench/bench_shards.py [--sizes 50000] [--shards 2] [--concurrency 8] [--json]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

What it does, once per run of the script:
  * creates the warehouse of ``bench/bench_flow.py`` (its own code, imported) and fresh
    databases for the store and for Prefect on PostgreSQL, all dropped at the end;
  * starts ``prefect server start`` on its PostgreSQL database, creates the process work
    pool ``okr-pool``, deploys ``okr-shard`` from the project's ``prefect.yaml`` (the
    template ``okr init`` writes) and starts two ``prefect worker`` processes (not timed).
For each size N it writes bench_flow's project of N SQL KRs with ``[shards] count``, then
times, each in a fresh process:
  * first run: the sharded flow's first run, which also parses, checks and syncs the files;
  * best bare and naive bare: bench_flow's two baselines (the same N queries without the
    product, on one machine);
  * flow: one sharded ``update_key_results`` run measuring all N KRs (definitions
    unchanged): the parent starts one ``measure-shard`` flow run per shard on the workers,
    waits, then alerts and publishes;
  * flow unsplit: the same run with ``shards.count = 1``, in one process, for comparison.
The peak memory of each process of the sharded run is read from ``/proc`` (``VmHWM``): the
parent and each shard's flow-run process. ``--json`` prints one JSON object per size with
``krs``, ``flow_s``, ``best_bare_s``, ``naive_bare_s``, ``flow_over_best_bare``,
``flow_peak_mib`` (the largest of the processes), ``flow_peak_mib_by_process``,
``first_run_s``, ``flow_unsplit_s`` and ``shards``.
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
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench_flow's warehouse, project and baselines are reused

from bench.bench_flow import (  # noqa: E402
    BARE_CHILD,
    BEST_BARE_CHILD,
    FLOW_CHILD,
    ROWS_PER_METRIC,
    build_warehouse,
    create_database,
    drop_database,
    run_child,
    write_project,
)
from okr_pipeline.cli.init_files import prefect_yaml  # noqa: E402

PREFECT = [sys.executable, "-m", "prefect"]
POOL = "okr-pool"


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=5) as response:
            return bool(json.loads(response.read()))
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@contextlib.contextmanager
def prefect_server(env: dict[str, str], database_url: str, log: Path) -> Iterator[str]:
    """``prefect server start`` on its PostgreSQL database; its API URL."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env={**env, "PREFECT_API_DATABASE_CONNECTION_URL": database_url},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while not _healthy(api):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"the Prefect server did not start:\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            yield api
        finally:
            _stop(server)


@contextlib.contextmanager
def workers(env: dict[str, str], folder: Path, count: int) -> Iterator[None]:
    """``count`` process workers of the pool, stopped at the end."""
    started = []
    try:
        for index in range(count):
            out = (folder / f"worker-{index}.log").open("wb")
            started.append(
                subprocess.Popen(
                    [*PREFECT, "worker", "start", "--pool", POOL, "--name", f"bench-{index}"],
                    cwd=folder,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield
    finally:
        for worker in started:
            _stop(worker)


class ShardPeaks:
    """Samples the peak memory (``VmHWM``) of each shard's flow-run processes while it runs."""

    def __init__(self, prefect_home: str) -> None:
        self.peaks: dict[str, float] = {}
        # Only this bench's processes: other Prefect flow runs may share the machine.
        self._home = f"PREFECT_HOME={prefect_home}".encode()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ShardPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    environ = (entry / "environ").read_bytes().split(b"\0")
                    status = (entry / "status").read_text()
                except OSError:
                    continue
                run = next((v for v in environ if v.startswith(b"PREFECT__FLOW_RUN_ID=")), None)
                if run is None or self._home not in environ:
                    continue
                kib = next(
                    (
                        int(line.split()[1])
                        for line in status.splitlines()
                        if line.startswith("VmHWM")
                    ),
                    0,
                )
                key = run.split(b"=", 1)[1].decode()
                self.peaks[key] = max(self.peaks.get(key, 0.0), kib / 1024)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[2:])} failed:\n{result.stdout}{result.stderr}")


def main() -> None:
    """Run the benchmark with the sizes, shards and concurrency given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50000])
    parser.add_argument("--shards", type=int, default=2)
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
    args = parser.parse_args()
    say = (lambda *_: None) if args.json else print
    work = Path(tempfile.mkdtemp(prefix="okr-bench-shards-"))
    warehouse = create_database(args.postgres, "okr_bench_wh")
    prefect_db = create_database(args.postgres, "okr_bench_prefect")
    stores: list[str] = []
    stack = contextlib.ExitStack()
    try:
        say(f"building the warehouse ({max(args.sizes)} metrics x {ROWS_PER_METRIC} rows)...")
        build_warehouse(warehouse, max(args.sizes))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
        env.update(
            PREFECT_HOME=str(work / "prefect-home"),
            PREFECT_LOGGING_LEVEL="WARNING",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_CLI_PROMPT="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
        )
        asyncpg = prefect_db.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)
        env["PREFECT_API_URL"] = stack.enter_context(
            prefect_server(env, asyncpg, work / "server.log")
        )
        _run([*PREFECT, "work-pool", "create", POOL, "--type", "process"], work, env)
        stack.enter_context(workers(env, work, args.shards))
        say(
            f"{'KRs':>7} {'best bare s':>11} {'naive bare s':>12} {'flow s':>8} "
            f"{'flow/best':>9} {'unsplit s':>9} {'MiB parent/shards':>18} {'first run s':>11}"
        )
        for size in args.sizes:
            store = create_database(args.postgres, "okr_bench_store")
            stores.append(store)
            project = work / f"project-{size}"
            write_project(project, size, warehouse, store, args.concurrency)
            with (project / "okr.toml").open("a") as toml:
                toml.write(f'\n[shards]\ncount = {args.shards}\nwork_pool = "{POOL}"\n')
            (project / "prefect.yaml").write_text(prefect_yaml(str(project)))
            _run([*PREFECT, "deploy", "--name", "okr-shard"], project, env)

            first = run_child(FLOW_CHILD, str(project), env=env)  # parses, syncs, shards
            naive = run_child(BARE_CHILD, warehouse, str(size), str(args.concurrency), env=env)
            best = run_child(BEST_BARE_CHILD, warehouse, str(size), str(args.concurrency), env=env)
            with ShardPeaks(env["PREFECT_HOME"]) as peaks:
                flow = run_child(FLOW_CHILD, str(project), env=env)
            unsplit = run_child(FLOW_CHILD, str(project), env={**env, "OKR_SHARDS__COUNT": "1"})
            for result in (flow, unsplit):
                if result["measured"] != size or result["errors"] or result["synced"]:
                    raise SystemExit(f"unexpected flow result at {size} KRs: {result}")
            by_process: dict[str, Any] = {"parent": round(flow["peak_mib"])}
            for index, peak in enumerate(sorted(peaks.peaks.values(), reverse=True)):
                by_process[f"shard-{index + 1}"] = round(peak)
            figures = {
                "krs": size,
                "shards": args.shards,
                "flow_s": round(flow["seconds"], 3),
                "best_bare_s": round(best["seconds"], 3),
                "naive_bare_s": round(naive["seconds"], 3),
                "flow_over_best_bare": round(flow["seconds"] / best["seconds"], 2),
                "flow_unsplit_s": round(unsplit["seconds"], 3),
                "flow_peak_mib": max(by_process.values()),
                "flow_peak_mib_by_process": by_process,
                "best_bare_peak_mib": round(best["peak_mib"]),
                "first_run_s": round(first["seconds"], 3),
            }
            if args.json:
                print(json.dumps(figures), flush=True)
                continue
            memory = "/".join(str(v) for v in by_process.values())
            print(
                f"{size:>7} {best['seconds']:>11.2f} {naive['seconds']:>12.2f} "
                f"{flow['seconds']:>8.2f} {figures['flow_over_best_bare']:>9.2f} "
                f"{unsplit['seconds']:>9.2f} {memory:>18} {first['seconds']:>11.2f}"
            )
    finally:
        stack.close()
        for url in [warehouse, prefect_db, *stores]:
            drop_database(args.postgres, url)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
