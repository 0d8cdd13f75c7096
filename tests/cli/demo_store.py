"""A demo project whose store is filled as ``okr demo`` fills it, for the listing tests.

The demo project (warehouse, analytics API, OKR files) measured once a week since its cycle
began and once now, with the Prefect-free ``run_update`` (what the demo's flow calls), plus
a silence with a long reason. The reading commands are then run on it as a user runs them:
``python -m okr_pipeline`` in a subprocess, at a chosen terminal width.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from okr_pipeline.demo.analytics_api import TOKEN_SECRET, start_in_background
from okr_pipeline.demo.project import backfill_times, create_demo_project, load_cycle_start
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.update import RunRequest, run_update
from tests.ports import free_port

#: A reason long enough to wrap in an 80-column silences table.
SILENCE_REASON = "support team on the on-call migration this week, numbers are not comparable"
SILENCED = "support-excellence/response-time"


@dataclass(frozen=True)
class DemoStore:
    """The filled demo project and what the tests compare the output with."""

    project: Path
    refs: tuple[str, ...]
    env: dict[str, str]

    @property
    def kr_ids(self) -> tuple[str, ...]:
        """The KR ids (the part after ``objective/``)."""
        return tuple(ref.split("/", 1)[1] for ref in self.refs)

    def okr(self, *args: str, width: int = 80) -> subprocess.CompletedProcess[str]:
        """Run ``okr ARGS`` in the project, in a terminal ``width`` columns wide."""
        return subprocess.run(
            [sys.executable, "-m", "okr_pipeline", *args],
            cwd=self.project,
            env={**self.env, "COLUMNS": str(width)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def clean_env(prefect_home: Path) -> dict[str, str]:
    """The environment without OKR_/PREFECT_ settings leaking in from the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(prefect_home)
    return env


def fill_demo(directory: Path, monkeypatch: pytest.MonkeyPatch) -> DemoStore:
    """Create the demo project in ``directory`` and fill its store like ``okr demo``."""
    for name in list(os.environ):
        if name.startswith("OKR_") and not name.startswith("OKR_TEST_"):
            monkeypatch.delenv(name)
    port = free_port()
    project = create_demo_project(directory / "demo", port=port)
    settings = load_settings(project)
    token = settings.secrets[TOKEN_SECRET].get_secret_value()
    server = start_in_background(project / "warehouse.db", token, port)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        start = date.fromisoformat(load_cycle_start(project))
        for moment in [*backfill_times(start, now), now]:
            summary = run_update(RunRequest(project_dir=project, as_of=moment, all_krs=True))
            assert summary.measured > 0, f"the demo measured nothing as of {moment}"
    finally:
        server.shutdown()
        server.server_close()
    store = Store.open(settings.resolved_store_url())
    try:
        refs = tuple(sorted(kr.ref for kr in store.active_key_results()))
        store.add_silence(SILENCED, now + timedelta(days=3), SILENCE_REASON, now)
    finally:
        store.close()
    return DemoStore(project=project, refs=refs, env=clean_env(directory / "prefect-home"))
