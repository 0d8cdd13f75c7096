"""Connection limits shared through a Prefect server: two runs, one bound.

Two processes fetch at the same time, their slots taken from one Prefect server's global
concurrency limit: from one PostgreSQL connection with ``max_concurrency`` 4 (the test
samples ``pg_stat_activity`` while they run), and from one API with a quota of 20
requests a second (the API counts what it refused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from okr_pipeline.flows.limits import limit_name
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.run.quota_api import quota_api

ROOT = Path(__file__).resolve().parents[2]
KRS_PER_RUN = 400


def _start_runs(
    kind: str, url: str, count: int, api_url: str, apps: tuple[str, str] = ("", "")
) -> list[subprocess.Popen[str]]:
    """Two runs, started together once both are ready (imports, Prefect client)."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.flows.limits_run", kind, url, str(count)],
            cwd=ROOT,
            env={**os.environ, "PREFECT_API_URL": api_url, "PGAPPNAME": app},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for app in apps
    ]
    for run in runs:
        assert run.stdout is not None
        line = run.stdout.readline()
        assert line.strip() == "ready", line + (run.stderr.read() if run.stderr else "")
    for run in runs:
        assert run.stdin is not None
        run.stdin.write("go\n")
        run.stdin.flush()
    return runs


def test_two_runs_never_hold_more_sessions_than_the_bound(
    prefect_harness: None, postgres_admin: sa.Engine, postgres_url: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    api_url = str(PREFECT_API_URL.value())
    database = make_url(postgres_url).database
    samples: list[dict[str, int]] = []
    stop = threading.Event()

    def sample() -> None:
        query = sa.text(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = :db GROUP BY application_name"
        )
        with postgres_admin.connect() as conn:
            while not stop.is_set():
                rows = conn.execute(query, {"db": database}).all()
                samples.append({str(app): int(n) for app, n in rows})
                time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    runs = _start_runs("sql", postgres_url, KRS_PER_RUN, api_url, ("run-a", "run-b"))
    try:
        outputs = [run.communicate(timeout=180) for run in runs]
    finally:
        stop.set()
        sampler.join()
        for run in runs:
            run.kill()
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert "bounded in this process only" not in err  # the shared limit was used
        assert json.loads(out.splitlines()[-1])["errors"] == []
    a, b = (json.loads(out.splitlines()[-1]) for out, _ in outputs)
    # The runs overlapped: both were fetching at once, and both had sessions open at once.
    assert a["started"] < b["ended"] and b["started"] < a["ended"]
    assert any(s.get("run-a") and s.get("run-b") for s in samples)
    peak = max(sum(s.values()) for s in samples)
    over = [s for s in samples if sum(s.values()) > 4]
    assert 0 < peak <= 4, f"{peak} sessions at once, {len(over)} of {len(samples)} samples over 4"
    # The limit was created from the settings, and every slot came back.
    name = limit_name("warehouse", ConnectionSettings(url=postgres_url))
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    assert limit.limit == 4 and limit.active_slots == 0


def test_two_runs_share_an_apis_quota(prefect_harness: None) -> None:
    """Two runs of 150 HTTP KRs against a live API refusing more than 20 requests a second.

    Live, not a vcrpy cassette: what is checked is when requests arrive, and a cassette
    replays answers without time.
    """
    from prefect.settings import PREFECT_API_URL

    api_url = str(PREFECT_API_URL.value())
    with quota_api(quota=20) as server:
        base = f"http://127.0.0.1:{server.server_port}"
        runs = _start_runs("http", base, 150, api_url)
        try:
            outputs = [run.communicate(timeout=180) for run in runs]
        finally:
            for run in runs:
                run.kill()
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert "bounded in this process only" not in err
        assert json.loads(out.splitlines()[-1])["errors"] == []
    a, b = (json.loads(out.splitlines()[-1]) for out, _ in outputs)
    assert a["started"] < b["ended"] and b["started"] < a["ended"]  # they overlapped
    assert server.refused == 0  # one quota for both: no request was ever refused
    assert server.answered == 300 and server.peak <= 20
