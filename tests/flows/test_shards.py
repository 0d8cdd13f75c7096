"""A sharded run on real processes: Prefect on PostgreSQL, a process pool, two workers.

``prefect server start`` with its own database on the PostgreSQL server (Prefect's
``PREFECT_API_DATABASE_CONNECTION_URL``, postgresql+asyncpg), the work pool ``okr-pool``,
the deployment ``okr-shard`` from the project's ``prefect.yaml`` (``prefect deploy``), two
``prefect worker`` processes, the store and the warehouse on PostgreSQL, 3,000 SQL KRs in
two shards. A first run completes with every KR stored once. In a second one, the worker
running a shard is killed (SIGKILL, with the shard's flow-run process: its machine is gone)
while the shard's queries run: Prefect marks that flow run Crashed when its heartbeats stop,
the parent starts the shard again on the other worker, and every KR ends with exactly one
measurement at the run's as-of, none stored twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from okr_pipeline.cli.init_files import prefect_yaml
from tests.flows.test_deploy_steps import PREFECT, _healthy, _run, _stop, _wait_for
from tests.ports import free_port

pytestmark = pytest.mark.postgres

KRS = 3000
SLEEP = 0.02  # seconds per query: a shard's fetch lasts long enough to be killed in it

PARENT = """
import json, sys
from okr_pipeline.flows.update import update_key_results
summary = update_key_results(project_dir=sys.argv[1], all_krs=True)
print(json.dumps({"run_id": summary.run_id, "measured": summary.measured,
                  "errors": summary.errors, "failed": summary.failed[:3]}))
"""


def _database(admin: sa.Engine, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return name


def _drop(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def databases(postgres_admin: sa.Engine) -> Iterator[dict[str, str]]:
    """Fresh databases for Prefect, the store and the warehouse, dropped afterwards."""
    names = {
        role: _database(postgres_admin, f"okr_shards_{role}") for role in ("prefect", "store", "wh")
    }
    url = postgres_admin.url
    try:
        yield {
            "prefect": url.set(
                drivername="postgresql+asyncpg", database=names["prefect"]
            ).render_as_string(hide_password=False),
            "store": url.set(database=names["store"]).render_as_string(hide_password=False),
            "wh": url.set(database=names["wh"]).render_as_string(hide_password=False),
        }
    finally:
        for name in names.values():
            _drop(postgres_admin, name)


def _project(folder: Path, databases: dict[str, str]) -> Path:
    okrs = folder / "okrs"
    okrs.mkdir(parents=True)
    lines = ["cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}", "objectives:"]
    for o in range(0, KRS, 5):
        lines += [f"  - id: obj-{o}", f"    title: Objective {o}", "    owner: a@example.com"]
        lines.append("    key_results:")
        for i in range(o, o + 5):
            query = f"SELECT {i} + 0 * count(*) FROM pg_sleep({SLEEP})"
            lines += [
                f"      - id: kr-{i}",
                f"        title: Metric {i}",
                "        baseline: 0",
                f"        target: {KRS}",
                f'        source: {{type: sql, connection: warehouse, query: "{query}"}}',
            ]
    (okrs / "okrs.yaml").write_text("\n".join(lines) + "\n")
    (folder / "okr.toml").write_text(
        f'store_url = "{databases["store"]}"\n'
        "max_concurrency = 8\n\n"
        "[connections.warehouse]\n"
        f'url = "{databases["wh"]}"\n'
        "max_concurrency = 4\n\n"
        '[shards]\ncount = 2\nwork_pool = "okr-pool"\n'
    )
    (folder / "prefect.yaml").write_text(prefect_yaml(str(folder)))
    return folder


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_LOGGING_LEVEL="INFO",
        COLUMNS="200",
    )
    return env


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str], databases: dict[str, str]) -> Iterator[str]:
    """``prefect server start`` on its PostgreSQL database and a free port; its API URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={
            **env,
            "PREFECT_API_DATABASE_CONNECTION_URL": databases["prefect"],
            # Events (heartbeats) readable soon after they arrive, for the test's own wait.
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for("the Prefect server", lambda: _healthy(api) or process.poll() is not None, 120)
        assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        env["PREFECT_API_URL"] = api
        yield api
    finally:
        _stop(process)
        log.close()


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _flow_runs(api: str, flow_name: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _post(
        f"{api}/flow_runs/filter", {"flows": {"name": {"any_": [flow_name]}}, "limit": 100}
    )
    return runs


def _heartbeats(api: str, flow_run_id: str) -> int:
    """How many heartbeats of the flow run the server has (what detects its death)."""
    page = _post(
        f"{api}/events/filter",
        {
            "filter": {
                "event": {"name": ["prefect.flow-run.heartbeat"]},
                "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
            },
            "limit": 5,
        },
    )
    return len(page["events"])


def _processes_of(flow_run_id: str) -> list[int]:
    """The processes running a flow run (their environment names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _worker_of(pids: list[int], workers: dict[int, subprocess.Popen[str]]) -> int:
    for pid in pids:
        current = pid
        while current > 1:
            if current in workers:
                return current
            current = _parent_of(current)
    raise AssertionError(f"no worker runs the processes {pids}")


def _per_kr(store_url: str, run_id: int) -> tuple[int, int, int, int]:
    """KRs measured by the run, the most measurements one KR has at its as-of, superseded
    rows at that as-of, and measurements that are not ok."""
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            as_of = conn.execute(sa.text("SELECT as_of FROM runs WHERE id = :r"), {"r": run_id})
            when = as_of.scalar_one()
            krs, most = conn.execute(
                sa.text(
                    "SELECT count(*), coalesce(max(n), 0) FROM (SELECT kr_id, count(*) AS n "
                    "FROM measurements WHERE as_of = :t GROUP BY kr_id) per_kr"
                ),
                {"t": when},
            ).one()
            superseded = conn.execute(
                sa.text("SELECT count(*) FROM superseded_measurements WHERE as_of = :t"),
                {"t": when},
            ).scalar_one()
            failed = conn.execute(
                sa.text("SELECT count(*) FROM measurements WHERE as_of = :t AND outcome <> 'ok'"),
                {"t": when},
            ).scalar_one()
        return int(krs), int(most), int(superseded), int(failed)
    finally:
        engine.dispose()


def _queries_running(warehouse: str) -> int:
    engine = sa.create_engine(warehouse)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _parent(project: Path, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PARENT, str(project)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )


def _summary(parent: subprocess.Popen[str], log: Path, timeout: float) -> dict[str, Any]:
    out, _ = parent.communicate(timeout=timeout)
    assert parent.returncode == 0, log.read_text()[-5000:]
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def test_a_sharded_run_survives_a_killed_worker(
    tmp_path: Path, env: dict[str, str], server: str, databases: dict[str, str]
) -> None:
    project = _project(tmp_path / "proj", databases)
    _run([*PREFECT, "work-pool", "create", "okr-pool", "--type", "process"], project, env)
    # The shard deployment only: the parent runs from this test, not on okr-update's cron.
    _run([*PREFECT, "deploy", "--name", "okr-shard"], project, env)

    workers: dict[int, subprocess.Popen[str]] = {}
    logs: list[Any] = []
    try:
        for name in ("worker-a", "worker-b"):
            log = (tmp_path / f"{name}.log").open("w")
            logs.append(log)
            worker = subprocess.Popen(
                [*PREFECT, "worker", "start", "--pool", "okr-pool", "--limit", "1", "--name", name],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            workers[worker.pid] = worker

        # 1. A sharded run: both shards complete, every KR stored once.
        first = _summary(
            _parent(project, env, tmp_path / "parent-1.log"), tmp_path / "parent-1.log", 300
        )
        assert (first["measured"], first["errors"]) == (KRS, 0), first
        assert _per_kr(databases["store"], first["run_id"]) == (KRS, 1, 0, 0)
        shards = _flow_runs(server, "measure-shard")
        assert sorted(r["state_type"] for r in shards) == ["COMPLETED", "COMPLETED"]
        assert all(r["parent_task_run_id"] for r in shards)  # linked to the parent run

        # 2. Kill the worker running a shard while its queries run.
        log2 = tmp_path / "parent-2.log"
        parent = _parent(project, env, log2)
        seen = {r["id"] for r in shards}
        victim: dict[str, Any] = {}

        def a_shard_is_querying() -> bool:
            running = [
                r
                for r in _flow_runs(server, "measure-shard")
                if r["id"] not in seen and r["state_type"] == "RUNNING"
            ]
            if running and _queries_running(databases["wh"]) > 0:
                for flow_run in running:
                    pids = _processes_of(flow_run["id"])
                    # Killed before its first heartbeat reached the server, a flow run
                    # would never be missed: a machine lost that early stays Running.
                    if pids and _heartbeats(server, flow_run["id"]):
                        victim.update(flow_run=flow_run, pids=pids)
                        return True
            assert parent.poll() is None, log2.read_text()[-3000:]
            return False

        _wait_for("a shard's queries", a_shard_is_querying, 120)
        killed = _worker_of(victim["pids"], workers)
        for pid in [killed, *victim["pids"]]:
            os.kill(pid, signal.SIGKILL)
        workers.pop(killed).wait()

        second = _summary(parent, log2, 400)
        assert (second["measured"], second["errors"]) == (KRS, 0), second
        assert second["run_id"] != first["run_id"]
        # Every KR once at the run's as-of: nothing lost, nothing stored twice.
        assert _per_kr(databases["store"], second["run_id"]) == (KRS, 1, 0, 0)
        by_id = {r["id"]: r for r in _flow_runs(server, "measure-shard")}
        assert by_id[victim["flow_run"]["id"]]["state_type"] == "CRASHED"
        again = [
            r
            for r in by_id.values()
            if r["id"] not in seen
            and r["parameters"]["shard"] == victim["flow_run"]["parameters"]["shard"]
        ]
        assert sorted(r["state_type"] for r in again) == ["COMPLETED", "CRASHED"]
    finally:
        for worker in workers.values():
            _stop(worker)
        for log in logs:
            log.close()
        for flow_run in _flow_runs(server, "measure-shard") if _healthy(server) else []:
            for pid in _processes_of(flow_run["id"]):
                os.kill(pid, signal.SIGKILL)


def test_the_flow_run_of_a_shard_is_found_by_its_environment() -> None:
    assert _processes_of(str(uuid.uuid4())) == []
    assert _parent_of(os.getpid()) == os.getppid()
