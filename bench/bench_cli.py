"""Benchmark: the commands a person waits for, timed as they type them.

    python bench/bench_cli.py [--repeat 3] [--size 10000] [--json] [--skip-prefect]
        [--skip-small] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Each figure is the wall time of a fresh ``okr`` process (``python -m okr_pipeline``, as the
``okr`` script runs it), the best of ``--repeat`` tries, with the CPU time it used beside
it (user + system, its children included: on a busy machine wall time waits for the CPU)
and the median wall time of the tries.

A small run (unless ``--skip-small``), in the demo's folder (``okr demo``: a dozen KRs,
SQLite, its analytics API kept up by ``okr demo-api``), ``okr run --all``:
  * ``no server``: no Prefect API configured (a fresh ``PREFECT_HOME``, no ``PREFECT_*``
    variables): the run needs no Prefect at all;
  * ``--prefect``: the same with ``--prefect``: okr starts a temporary Prefect server;
  * ``configured server``: ``PREFECT_API_URL`` names a running ``prefect server start``
    (started before, not timed).

At ``--size`` KRs (10,000), the project ``bench/bench_flow.py`` writes (its functions:
SQL KRs on a PostgreSQL warehouse, 1,000 KRs a file, settings in okr.toml):
  * ``okr validate``;
  * the first load and sync into an empty store (parse, validate, sync; no fetch) in a
    fresh process, and the first whole run without Prefect (that, then fetch, score and
    store every KR), both once;
  * ``okr status`` once every KR has a value, on a SQLite store and on PostgreSQL.

``--json`` prints one JSON object with every figure (seconds), nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_flow import (  # type: ignore[import-not-found]  # noqa: E402
    build_warehouse,
    create_database,
    drop_database,
    run_child,
    write_project,
)

OKR = [sys.executable, "-m", "okr_pipeline"]

LOAD_AND_SYNC = """
import json, sys, time
started = time.perf_counter()
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.definitions import load_definitions
imported = time.perf_counter()
settings = load_settings(sys.argv[1])
store = Store.open(settings.resolved_store_url())
opened = time.perf_counter()
okr_set = load_definitions(settings)
loaded = time.perf_counter()
result = store.sync_definitions(okr_set)
synced = time.perf_counter()
store.close()
print(json.dumps({"import_s": imported - started, "load_s": loaded - opened,
                  "sync_s": synced - loaded, "added": result.added}))
"""

FIRST_RUN = """
import json, sys, time
started = time.perf_counter()
from okr_pipeline.run.update import RunRequest, run_update
summary = run_update(RunRequest(project_dir=__import__("pathlib").Path(sys.argv[1]), all_krs=True))
print(json.dumps({"seconds": time.perf_counter() - started, "measured": summary.measured,
                  "errors": summary.errors, "synced": summary.definitions_synced}))
"""


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(home: Path) -> dict[str, str]:
    """The environment with no Prefect API configured: no PREFECT_* or OKR_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(home)
    return env


def timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``command`` to its end; its wall time and the CPU time it (and its children) used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 3):  # 3: a source failed; the command itself worked
        raise SystemExit(f"{' '.join(command)} failed:\n{(out.stdout + out.stderr)[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def best(command: Sequence[str], cwd: Path, env: dict[str, str], repeat: int) -> dict[str, float]:
    """The fastest of ``repeat`` runs (its wall and CPU seconds), and their median wall time."""
    tries = [timed(command, cwd, env) for _ in range(repeat)]
    wall, cpu = min(tries)
    median = statistics.median(wall for wall, _ in tries)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "median_wall_s": round(median, 3)}


@contextlib.contextmanager
def demo_api(project: Path, env: dict[str, str]) -> Iterator[None]:
    """``okr demo-api`` for the demo's HTTP KRs, for the duration of the block."""
    from okr_pipeline.demo.project import demo_port

    port = demo_port(project)
    with (project / "demo-api.log").open("wb") as log:
        api = subprocess.Popen(
            [*OKR, "demo-api", "."], cwd=project, env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield
    finally:
        api.terminate()
        api.wait(timeout=30)


def small_run(work: Path, repeat: int, skip_prefect: bool) -> dict[str, object]:
    """``okr run --all`` in the demo's folder: without a server, with --prefect, with one."""
    env = clean_env(work / "prefect-home")
    demo = work / "demo"
    created = best([*OKR, "demo", str(demo), "--port", str(free_port())], work, env, 1)
    figures: dict[str, object] = {"demo_s": created}
    with demo_api(demo, env):
        run = [*OKR, "run", "--all"]
        figures["run_no_server"] = best(run, demo, env, repeat)
        if skip_prefect:
            return figures
        figures["run_prefect_flag"] = best([*run, "--prefect"], demo, env, repeat)
        from okr_pipeline.flows.prefect_server import local_prefect_server

        os.environ["PREFECT_HOME"] = str(work / "prefect-server-home")
        with local_prefect_server() as api:
            served = {**env, "PREFECT_API_URL": api}
            timed(run, demo, served)  # the server's first flow run registers the flow
            figures["run_configured_server"] = best(run, demo, served, repeat)
    return figures


def large_project(work: Path, size: int, repeat: int, admin_url: str) -> dict[str, object]:
    """validate, the first load and sync, the first run and status at ``size`` KRs."""
    env = clean_env(work / "prefect-home")
    warehouse = create_database(admin_url, "okr_bench_cli_wh")
    stores: list[str] = []
    try:
        build_warehouse(warehouse, size)
        figures: dict[str, object] = {"krs": size}
        for backend in ("sqlite", "postgresql"):
            project = work / f"project-{size}-{backend}"
            if backend == "sqlite":
                store = f"sqlite:///{project / 'store.db'}"
            else:
                store = create_database(admin_url, "okr_bench_cli_store")
                stores.append(store)
            write_project(project, size, warehouse, store, concurrency=8)
            if backend == "sqlite":
                figures["validate"] = best([*OKR, "validate"], project, env, repeat)
            first = run_child(LOAD_AND_SYNC, str(project), env=env)
            if first["added"] != size:
                raise SystemExit(f"the first sync added {first['added']} of {size} KRs")
            figures[f"first_load_sync_{backend}"] = {
                key: round(value, 3) for key, value in first.items() if key.endswith("_s")
            }
            # Measure every KR once (definitions already synced above: reset the store's
            # fingerprint first, so that this run loads and syncs again, as a first run does).
            reset = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from okr_pipeline.okr_store.store import Store; "
                    "from okr_pipeline.okr_store.sync import FINGERPRINT_KEY, upsert_meta; "
                    "s = Store.open(sys.argv[1]);\n"
                    "with s.engine.begin() as c: upsert_meta(c, FINGERPRINT_KEY, 'reset')",
                    store,
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if reset.returncode != 0:
                raise SystemExit(reset.stderr[-2000:])
            run = run_child(FIRST_RUN, str(project), env=env)
            if run["measured"] != size or run["errors"]:
                raise SystemExit(f"unexpected first run at {size} KRs: {run}")
            figures[f"first_run_plain_{backend}_s"] = round(run["seconds"], 3)
            figures[f"status_{backend}"] = best([*OKR, "status"], project, env, repeat)
        return figures
    finally:
        for url in [warehouse, *stores]:
            drop_database(admin_url, url)


def main() -> None:
    """Run the benchmark with the options given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="tries per figure (the best)")
    parser.add_argument("--size", type=int, default=10_000, help="KRs of the large project")
    parser.add_argument(
        "--skip-prefect", action="store_true", help="only the small run without a server"
    )
    parser.add_argument(
        "--skip-small", action="store_true", help="no small run: only the large project"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "OKR_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin URL of the PostgreSQL server to create the databases on",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="okr-bench-cli-"))
    try:
        figures = {
            "cpus": os.cpu_count(),
            "small": {} if args.skip_small else small_run(work, args.repeat, args.skip_prefect),
            "large": large_project(work, args.size, args.repeat, args.postgres),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"okr commands, wall s (cpu s) best of {args.repeat}, median wall s, {figures['cpus']} CPUs"
    )
    for group in ("small", "large"):
        for name, value in figures[group].items():  # type: ignore[attr-defined]
            if isinstance(value, dict) and "wall_s" in value:
                shown = (
                    f"{value['wall_s']:.2f} ({value['cpu_s']:.2f}), "
                    f"median {value['median_wall_s']:.2f}"
                )
            elif isinstance(value, dict):
                shown = ", ".join(f"{k} {v:.2f}" for k, v in value.items())
            else:
                shown = str(value)
            print(f"  {group:5} {name:32} {shown}")


if __name__ == "__main__":
    main()
