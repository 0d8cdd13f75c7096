"""A killed run's slots come back: its leases expire, a live run's are renewed.

A Prefect server of its own, whose repossessor (which revokes expired leases) looks every
second rather than every 15: the wait is then the lease itself, 60 s (the shortest the
server grants), so this test takes a little over a minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from okr_pipeline.flows.limits import LEASE_SECONDS, limit_name
from okr_pipeline.okr_core.settings import ConnectionSettings

ROOT = Path(__file__).resolve().parents[2]
URL = "postgresql+psycopg://reader@warehouse.invalid/analytics"  # never connected to


@pytest.fixture
def prefect_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from okr_pipeline.flows.prefect_server import local_prefect_server

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS", "1")
    with local_prefect_server() as api:
        yield api


def _holder(api: str, slots: int) -> subprocess.Popen[str]:
    run = subprocess.Popen(
        [sys.executable, "-m", "tests.flows.limits_run", "hold", URL, str(slots)],
        cwd=ROOT,
        env={**os.environ, "PREFECT_API_URL": api},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stdout is not None
    line = run.stdout.readline()
    assert line.strip() == "held", line + (run.stderr.read() if run.stderr else "")
    return run


def test_a_killed_runs_slots_come_back_and_a_live_runs_stay(prefect_api: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    name = limit_name("warehouse", ConnectionSettings(url=URL))
    live = _holder(prefect_api, 2)
    killed = _holder(prefect_api, 2)
    with (
        temporary_settings(updates={PREFECT_API_URL: prefect_api}),
        get_client(sync_client=True) as client,
    ):

        def active() -> int:
            return client.read_global_concurrency_limit_by_name(name).active_slots

        assert active() == 4
        os.kill(killed.pid, signal.SIGKILL)  # no chance to give anything back
        killed.wait()
        assert active() == 4  # nobody gave them back: they are still counted
        deadline = time.monotonic() + LEASE_SECONDS + 60
        while active() > 2 and time.monotonic() < deadline:
            time.sleep(1)
        # The killed run's two came back when their leases expired; the live run has
        # held its two for over a lease's length, renewed, and still holds them.
        assert active() == 2
        assert live.poll() is None
        assert live.stdin is not None
        live.stdin.close()  # the live run ends normally and gives its slots back
        assert live.wait(timeout=30) == 0
        assert active() == 0
