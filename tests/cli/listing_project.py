"""A small project with a known history, for the listing, history and export tests.

Two objectives in cycle 2026-Q4: ``growth/signups`` measured from a SQLite warehouse once a
week in October (the third week has no row: an error, a gap in its history), a KR with a
long id stuck at 1 of 100 (off track: it alerts), and ``community/meetups``, a manual KR
with two check-ins by hand; a note on signups at the week that failed. Runs go through the
Prefect-free ``run_update``; the commands are then run for real in a subprocess.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.run.checkin import add_note, record_checkin
from okr_pipeline.run.update import RunRequest, run_update
from tests.cli.demo_store import clean_env

OKRS = """\
cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
objectives:
  - id: growth
    title: Grow
    owner: o@example.com
    key_results:
      - id: signups
        title: Signups from 10 to 50
        unit: signups
        baseline: 10
        target: 50
        source:
          type: sql
          connection: warehouse
          query: "SELECT value FROM points WHERE day = date(:as_of)"
        schedule: "0 9 * * *"
      - id: paying-listeners-from-the-spring-campaign
        title: Paying listeners from 0 to 100 (stuck at 1, so it alerts)
        baseline: 0
        target: 100
        source: {type: sql, connection: warehouse, query: "SELECT 1"}
        schedule: "0 9 * * *"
  - id: community
    title: Listeners meet
    owner: lee@example.com
    key_results:
      - id: meetups
        title: Hold 6 meetups
        baseline: 0
        target: 6
        source: {type: manual}
"""

#: The as-ofs measured, and the warehouse's value for each (None: no row, so no data).
WEEKS = [datetime(2026, 10, 1, 9, tzinfo=UTC) + timedelta(days=7 * n) for n in range(4)]
VALUES: list[Decimal | None] = [Decimal("12.5"), Decimal("20"), None, Decimal("31.25")]
CHECKINS = [(WEEKS[1], "1", "first meetup, in Lyon"), (WEEKS[3], "2", None)]
AUTHOR = "lee@example.com"
#: A note on the measured KR, at the week it failed.
NOTE = (WEEKS[2], "warehouse load failed that week")


@dataclass(frozen=True)
class ListingProject:
    """The project folder and how to run ``okr`` in it."""

    project: Path
    env: dict[str, str]

    def okr(self, *args: str, width: int = 120) -> subprocess.CompletedProcess[str]:
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


def build(directory: Path, monkeypatch: pytest.MonkeyPatch) -> ListingProject:
    """Write the project into ``directory``, measure its weeks and record its check-ins."""
    import os

    for name in list(os.environ):
        if name.startswith("OKR_") and not name.startswith("OKR_TEST_"):
            monkeypatch.delenv(name)
    project = directory / "project"
    (project / "okrs").mkdir(parents=True)
    (project / "okrs" / "q4.yaml").write_text(OKRS, encoding="utf-8")
    with sqlite3.connect(project / "wh.db") as conn:
        conn.execute("CREATE TABLE points (day TEXT, value TEXT)")
        conn.executemany(
            "INSERT INTO points VALUES (?, ?)",
            [
                (w.date().isoformat(), str(v))
                for w, v in zip(WEEKS, VALUES, strict=True)
                if v is not None
            ],
        )
    (project / ".env").write_text(
        f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{project / 'wh.db'}\n", encoding="utf-8"
    )
    for week in WEEKS:
        run_update(RunRequest(project_dir=project, as_of=week, all_krs=True))
    settings = load_settings(project)
    for as_of, value, note in CHECKINS:
        record_checkin(settings, "community/meetups", value, author=AUTHOR, note=note, as_of=as_of)
    add_note(settings, "growth/signups", NOTE[1], author=AUTHOR, as_of=NOTE[0])
    return ListingProject(project=project, env=clean_env(directory / "prefect-home"))
