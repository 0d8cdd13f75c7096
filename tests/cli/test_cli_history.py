"""``okr run``, ``okr backfill`` and ``okr runs`` as a user runs them: history and as-ofs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_no_traceback, cli_env, okr, project
from tests.ports import free_port

__all__ = ["cli_env", "project"]  # fixtures shared with test_cli

WAREHOUSE_KR = """\
cycle: {{name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}}
objectives:
  - id: growth
    title: Grow
    owner: o@example.com
    key_results:
      - id: signups
        title: Signups from 0 to 40
        baseline: 0
        target: 40
        source:
          type: sql
          connection: warehouse
          query: "SELECT count(*) FROM signups WHERE ts < :as_of"
      - id: new-users
        title: New users +20%
        baseline: auto
        target: "+20%"
        source:
          type: sql
          connection: warehouse
          query: "SELECT count(*) FROM signups WHERE ts < :as_of"
      - id: today-only
        title: Something only known today
        baseline: 0
        target: 10
        source: {{type: sql, connection: warehouse, query: "SELECT 3"}}
"""


@pytest.fixture
def warehouse_project(tmp_path: Path) -> Path:
    import sqlite3

    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "q4.yaml").write_text(WAREHOUSE_KR.format())
    db = tmp_path / "wh.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE signups (ts TEXT)")
        start = datetime(2026, 10, 1)
        conn.executemany(
            "INSERT INTO signups VALUES (?)",
            [((start + timedelta(hours=12 * n)).isoformat(" "),) for n in range(1, 120)],
        )
    (tmp_path / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{db}\n")
    return tmp_path


def _no_prefect(env: dict[str, str]) -> dict[str, str]:
    # A Prefect API where nothing listens: a command that started Prefect would fail on it.
    return {**env, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}


def test_run_checks_its_arguments_before_prefect_starts(
    project: Path, cli_env: dict[str, str]
) -> None:
    unknown = okr("run", "--kr", "nope", cwd=project, env=_no_prefect(cli_env))
    assert unknown.returncode == 1, unknown.stderr
    assert "Error: No key result named 'nope'" in unknown.stderr
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    ahead = okr("run", "--as-of", future, cwd=project, env=_no_prefect(cli_env))
    assert ahead.returncode == 1 and "is in the future" in ahead.stderr
    assert "--allow-future" in ahead.stderr
    for result in (unknown, ahead):
        assert_no_traceback(result)
        assert len(result.stderr.strip().splitlines()) == 1


def test_backfill_measures_each_as_of_in_order_then_skips_or_replaces(
    warehouse_project: Path, cli_env: dict[str, str]
) -> None:
    args = ("backfill", "--from", "2026-10-08", "--to", "2026-10-22", "--every", "1w")
    first = okr(*args, cwd=warehouse_project, env=cli_env)
    assert first.returncode == 3, first.stdout + first.stderr  # new-users: baseline == target
    assert_no_traceback(first)
    lines = [line.strip() for line in first.stdout.splitlines()]
    # Two KRs take an as-of; today-only does not and is left out.
    assert "2026-10-08T00:00+00:00: measured 2, 1 failed" in lines
    assert "2026-10-22T00:00+00:00: measured 2, 1 failed" in lines
    assert "Backfilled 3 as-of dates: 6 measurements, 3 failed." in lines
    assert "baseline 0 (measured at the cycle's start) equals the target 0" in first.stdout
    again = okr(*args, cwd=warehouse_project, env=cli_env)
    assert "Backfilled 3 as-of dates: 0 measurements, 0 failed." in again.stdout
    replaced = okr(*args, "--replace", "--kr", "signups", cwd=warehouse_project, env=cli_env)
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert "Backfilled 3 as-of dates: 3 measurements, 0 failed." in replaced.stdout
    runs = okr("runs", cwd=warehouse_project, env=cli_env)
    assert runs.returncode == 0
    for day in ("2026-10-08", "2026-10-15", "2026-10-22"):
        assert runs.stdout.count(f"{day} 00:00") == 3  # first, again, replaced
    assert "completed" in runs.stdout


def test_run_prints_the_state_as_of_the_run(
    warehouse_project: Path, cli_env: dict[str, str]
) -> None:
    late = okr("run", "--all", "--as-of", "2026-11-20", cwd=warehouse_project, env=cli_env)
    early = okr("run", "--all", "--as-of", "2026-10-08", cwd=warehouse_project, env=cli_env)
    assert late.returncode == early.returncode == 3, early.stderr  # new-users' error
    # Signups as of Oct 8 (13 or 14, as the driver binds the time), not the November value
    # (99 or 100) of the latest state.
    signups = [line.split() for line in early.stdout.splitlines() if line.startswith("signups ")]
    assert signups and signups[-1][1] in ("13", "14"), early.stdout
    # new-users' automatic baseline equals its target: an error, never "at target" 1.0.
    new_users = [line for line in early.stdout.splitlines() if line.startswith("new-users ")]
    assert new_users and "error" in new_users[-1] and "1.00" not in new_users[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-10-22", "--to", "2026-10-08"), "is before --from"),
        (("--from", "soon", "--to", "2026-10-08"), "--from 'soon' is not an ISO 8601"),
        (("--from", "2026-10-01", "--to", "2026-10-08", "--every", "often"), "not a duration"),
        (("--from", "2026-01-01", "--to", "2026-10-08", "--every", "1h"), "at most 1000"),
    ],
)
def test_backfill_argument_errors(
    warehouse_project: Path, cli_env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = okr("backfill", *args, cwd=warehouse_project, env=_no_prefect(cli_env))
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert_no_traceback(result)
