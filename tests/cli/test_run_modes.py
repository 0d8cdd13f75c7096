"""Where ``okr run`` runs: without Prefect when no Prefect API is configured (and says so),
on the configured Prefect server, or with ``--prefect`` on a temporary one.

Each run is a real ``okr`` process; whether it was a Prefect flow run is read back from the
store (``okr runs --json``: a flow run's id, or null) and, for a server, from Prefect's API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from okr_pipeline.cli.run_commands import WITHOUT_PREFECT

OKR = [sys.executable, "-m", "okr_pipeline"]

OKRS = """\
cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
objectives:
  - id: growth
    title: Grow
    owner: o@example.com
    key_results:
      - id: signups
        title: Signups from 10 to 20
        baseline: 10
        target: 20
        source: {type: sql, connection: warehouse, query: "SELECT 12 WHERE :as_of IS NOT NULL"}
"""


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """No Prefect API configured anywhere: a fresh Prefect home, no PREFECT_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "okrs").mkdir(parents=True)
    (folder / "okrs" / "q4.yaml").write_text(OKRS)
    (folder / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{folder}/wh.db\n")
    return folder


def okr(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OKR, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def flow_run_ids(project: Path, env: dict[str, str]) -> list[str | None]:
    result = okr("runs", "--json", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    return [run["flow_run_id"] for run in json.loads(result.stdout)]


def test_without_a_prefect_api_a_run_needs_no_prefect_and_says_so(
    project: Path, cli_env: dict[str, str]
) -> None:
    result = okr("run", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "measured 1 of 1 KRs" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == WITHOUT_PREFECT  # said once, last
    assert "Traceback" not in result.stdout + result.stderr
    # No flow run, and no server: Prefect never even created its database.
    assert flow_run_ids(project, cli_env) == [None]
    assert not (Path(cli_env["PREFECT_HOME"]) / "prefect.db").exists()
    backfill = okr(
        "backfill", "--from", "2026-10-01", "--to", "2026-10-08", cwd=project, env=cli_env
    )
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr
    assert WITHOUT_PREFECT in backfill.stdout
    assert flow_run_ids(project, cli_env) == [None] * 3


def test_prefect_blocks_without_a_prefect_api_are_one_clear_line(
    project: Path, cli_env: dict[str, str]
) -> None:
    (project / ".env").write_text("OKR_CONNECTIONS__WAREHOUSE__URL=prefect-block://x/y\n")
    result = okr("run", cwd=project, env=cli_env)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: OKR_CONNECTIONS__WAREHOUSE__URL names a Prefect block")
    assert "PREFECT_API_URL" in line and "--prefect" in line


def test_with_prefect_flag_the_run_is_a_flow_run_on_a_temporary_server(
    project: Path, cli_env: dict[str, str]
) -> None:
    result = okr("run", "--prefect", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "measured 1 of 1 KRs" in result.stdout
    assert WITHOUT_PREFECT not in result.stdout
    (flow_run_id,) = flow_run_ids(project, cli_env)
    assert flow_run_id is not None and uuid.UUID(flow_run_id)
    # The temporary server kept its database in the Prefect home.
    assert (Path(cli_env["PREFECT_HOME"]) / "prefect.db").exists()


def test_with_a_configured_server_the_run_is_a_flow_run_there(
    project: Path, cli_env: dict[str, str], prefect_harness: None
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {**cli_env, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    result = okr("run", cwd=project, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert WITHOUT_PREFECT not in result.stdout
    (flow_run_id,) = flow_run_ids(project, env)
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(uuid.UUID(flow_run_id))
    assert flow_run.state is not None and flow_run.state.is_completed()
    # A profile that names the server counts as configured, as Prefect reads it.
    profiles = Path(cli_env["PREFECT_HOME"]) / "profiles.toml"
    profiles.parent.mkdir(parents=True, exist_ok=True)
    profiles.write_text(
        f'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "{PREFECT_API_URL.value()}"\n'
    )
    again = okr("run", "--all", cwd=project, env=cli_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert WITHOUT_PREFECT not in again.stdout
    assert all(flow_run_ids(project, cli_env))


def test_a_run_without_prefect_writes_the_report_as_the_flow_does(
    project: Path, cli_env: dict[str, str]
) -> None:
    with (project / ".env").open("a") as env_file:
        env_file.write("OKR_REPORT_DIR=reports\n")
    result = okr("run", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    (report,) = (project / "reports").glob("okr-report-*.html")
    assert 'data-kr="growth/signups"' in report.read_text(encoding="utf-8")
    # A report that cannot be written is one line; the run still counts.
    report.unlink()
    (project / "reports").rmdir()
    (project / "reports").write_text("a file where the folder goes")
    again = okr("run", "--all", cwd=project, env=cli_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "The report could not be written" in again.stdout
    assert "Traceback" not in again.stdout + again.stderr
