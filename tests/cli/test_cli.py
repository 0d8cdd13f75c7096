"""The ``okr`` command as a user runs it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

OKR = [sys.executable, "-m", "okr_pipeline"]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment of our own: a fresh Prefect home, no OKR_* settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    env["COLUMNS"] = "120"
    return env


def okr(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OKR, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert "| ERROR" not in output, output


VALID = """\
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
        source: {type: sql, connection: warehouse, query: "SELECT 12"}
      - id: launch
        title: Launch the app
        kind: milestone
        source: {type: sql, connection: warehouse, query: "SELECT 1"}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "q4.yaml").write_text(VALID)
    (tmp_path / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path}/wh.db\n")
    return tmp_path


def test_validate_ok(project: Path, cli_env: dict[str, str]) -> None:
    result = okr("validate", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "1 objective, 2 key results: valid" in result.stdout


def test_validate_lists_every_problem_with_place_and_line(
    project: Path, cli_env: dict[str, str]
) -> None:
    bad = VALID.replace('type: sql, connection: warehouse, query: "SELECT 12"', "type: sqll")
    bad = bad.replace("    owner: o@example.com\n", "    owner: o@example.com\n    colour: blue\n")
    (project / "okrs" / "q4.yaml").write_text(bad)
    result = okr("validate", cwd=project, env=cli_env)
    assert result.returncode == 1
    assert_no_traceback(result)
    lines = result.stderr.splitlines()
    assert any("q4.yaml:6: objectives[0].colour: unknown key 'colour'" in line for line in lines), (
        lines
    )
    assert any(
        "q4.yaml:" in line and "source.type: Unknown source type 'sqll'" in line for line in lines
    ), lines
    assert lines[-1].startswith("Error: 2 problems")


def test_unknown_connection_names_the_setting_to_define(
    project: Path, cli_env: dict[str, str]
) -> None:
    (project / ".env").write_text("")
    result = okr("validate", cwd=project, env=cli_env)
    assert result.returncode == 1
    assert "OKR_CONNECTIONS__WAREHOUSE__URL" in result.stderr
    assert "[connections.warehouse]" in result.stderr  # Rich markup must not eat it


def test_bad_setting_is_one_line(project: Path, cli_env: dict[str, str]) -> None:
    result = okr("validate", cwd=project, env={**cli_env, "OKR_MAX_CONCURRENCY": "zero"})
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "OKR_MAX_CONCURRENCY" in result.stderr and result.stderr.count("\n") <= 3


def test_schema_is_json_with_every_connector(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = okr("schema", cwd=tmp_path, env=cli_env)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    source = schema["$defs"]["KeyResultDef"]["properties"]["source"]
    assert set(source["discriminator"]["mapping"]) >= {"sql", "http"}


def test_connectors_lists_builtins(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = okr("connectors", cwd=tmp_path, env=cli_env)
    assert result.returncode == 0
    assert "sql" in result.stdout and "http" in result.stdout


def test_usage_errors_exit_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = okr("nope", cwd=tmp_path, env=cli_env)
    assert result.returncode == 2
    assert "No such command" in result.stderr
    assert_no_traceback(result)


def test_run_then_status(project: Path, cli_env: dict[str, str]) -> None:
    result = okr("run", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    assert "measured 2 of 2 KRs" in result.stdout
    status = okr("status", "--json", cwd=project, env=cli_env)
    rows = {row["id"]: row for row in json.loads(status.stdout)}
    assert rows["signups"]["value"] == "12" and rows["signups"]["progress"] == pytest.approx(0.2)
    assert rows["launch"]["score"] == 1.0 and rows["launch"]["status"] == "on_track"
    assert all(row["measured_at"] for row in rows.values())
    table = okr("status", cwd=project, env=cli_env)
    assert "signups" in table.stdout and "score" in table.stdout


def test_run_with_failing_source_exits_3_without_traceback(
    project: Path, cli_env: dict[str, str]
) -> None:
    (project / "okrs" / "q4.yaml").write_text(VALID.replace("SELECT 12", "SELECT x FROM missing"))
    result = okr("run", cwd=project, env=cli_env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert_no_traceback(result)
    assert "failed growth/signups" in result.stdout and "missing" in result.stdout


def test_run_unknown_kr_is_a_clear_error(project: Path, cli_env: dict[str, str]) -> None:
    result = okr("run", "--kr", "nope", cwd=project, env=cli_env)
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "Error: No key result named 'nope'" in result.stderr
    debug = okr("--debug", "run", "--kr", "nope", cwd=project, env=cli_env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_status_json_of_a_new_project_is_empty(project: Path, cli_env: dict[str, str]) -> None:
    # No store yet: said on stderr, exit 4, nothing created (tests/cli/test_no_store.py).
    result = okr("status", "--json", cwd=project, env=cli_env)
    assert result.returncode == 4 and result.stdout == "" and "No store yet" in result.stderr
    assert okr("db", "upgrade", cwd=project, env=cli_env).returncode == 0
    result = okr("status", "--json", cwd=project, env=cli_env)
    assert result.returncode == 0 and json.loads(result.stdout) == []


def test_demo_end_to_end(tmp_path: Path, cli_env: dict[str, str]) -> None:
    from tests.ports import free_port

    result = okr("demo", "demo", "--port", str(free_port()), cwd=tmp_path, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    for kr in (
        "first-time-listeners",
        "subscriptions-per-user",
        "recommendation-ctr",
        "satisfaction",
        "response-time",
        "uptime",
    ):
        assert kr in result.stdout
    assert "measured 8 of 8 KRs" in result.stdout
    status = okr("status", "--json", cwd=tmp_path / "demo", env=cli_env)
    rows = json.loads(status.stdout)
    assert len(rows) == 8 and all(row["value"] is not None for row in rows)
    # The backfilled weeks take off-track KRs through pending to firing: the demo's own
    # webhook received grouped messages, and the store recorded them as sent.
    inbox = (tmp_path / "demo" / "alerts-inbox.jsonl").read_text().splitlines()
    messages = [json.loads(line) for line in inbox]
    assert messages and all(m["title"].startswith("OKR alerts:") for m in messages)
    assert any("off track (firing)" in m["message"] for m in messages)
    listed = okr("alerts", cwd=tmp_path / "demo", env=cli_env)
    assert "off_track firing" in listed.stdout and "sent" in listed.stdout


def test_db_upgrade_creates_the_store_and_masks_the_password(
    project: Path, cli_env: dict[str, str], postgres_url: str
) -> None:
    url = sa.make_url(postgres_url).set(password="s3cret-pw")
    env = {**cli_env, "OKR_STORE_URL": url.render_as_string(hide_password=False)}
    result = okr("db", "upgrade", cwd=project, env=env)
    # trust auth ignores the password; it must still never be printed
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is at revision" in result.stdout
    assert "s3cret-pw" not in result.stdout + result.stderr and "***" in result.stdout
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert "key_results" in sa.inspect(conn).get_table_names()
    engine.dispose()


def test_validate_checks_the_alert_routing_file(project: Path, cli_env: dict[str, str]) -> None:
    (project / "alerts.yaml").write_text(
        "routes:\n  - name: pm\n    owners: [o@example.com]\n    colour: red\n"
        "    channels: ['json://127.0.0.1:1/hook']\n"
    )
    result = okr("validate", cwd=project, env=cli_env)
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "alerts.yaml:4" in result.stderr and "colour" in result.stderr
    (project / "alerts.yaml").write_text(
        "default_route:\n  channels: ['json://127.0.0.1:1/${secret:hook_token}']\n"
    )
    result = okr("validate", cwd=project, env=cli_env)
    assert result.returncode == 1
    assert "unknown secret 'hook_token'" in result.stderr
    assert "OKR_SECRETS__HOOK_TOKEN" in result.stderr
    result = okr("validate", cwd=project, env={**cli_env, "OKR_SECRETS__HOOK_TOKEN": "t0ken"})
    assert result.returncode == 0, result.stderr
    assert "alerts.yaml: 0 routes and the default route: valid" in result.stdout


def test_silence_list_remove_and_explain(project: Path, cli_env: dict[str, str]) -> None:
    assert okr("run", cwd=project, env=cli_env).returncode == 0
    added = okr(
        "silence", "signups", "--until", "3d", "--reason", "migration", cwd=project, env=cli_env
    )
    assert added.returncode == 0, added.stderr
    assert "Silenced growth/signups" in added.stdout
    objective = okr(
        "silence", "growth", "--until", "2099-01-01", "--reason", "all", cwd=project, env=cli_env
    )
    assert objective.returncode == 0 and "Silenced growth " in objective.stdout
    listed = okr("silences", cwd=project, env=cli_env)
    assert "growth/signups" in listed.stdout and "migration" in listed.stdout
    assert okr("unsilence", "1", cwd=project, env=cli_env).returncode == 0
    assert "growth/signups" not in okr("silences", cwd=project, env=cli_env).stdout
    again = okr("unsilence", "1", cwd=project, env=cli_env)
    assert again.returncode == 1 and "no active silence 1" in again.stderr
    past = okr(
        "silence", "signups", "--until", "2001-01-01", "--reason", "x", cwd=project, env=cli_env
    )
    assert past.returncode == 1 and "in the past" in past.stderr
    unknown = okr("silence", "nope", "--until", "1d", "--reason", "x", cwd=project, env=cli_env)
    assert unknown.returncode == 1 and "No key result named 'nope'" in unknown.stderr
    explained = okr("explain", "growth/signups", cwd=project, env=cli_env)
    assert explained.returncode == 0, explained.stderr
    assert "Signups from 10 to 20" in explained.stdout
    assert "progress 20%" in explained.stdout and "Decided by" in explained.stdout
    assert "Silenced until 2099-01-01" in explained.stdout
    alerts = okr("alerts", cwd=project, env=cli_env)
    assert alerts.returncode == 0 and "No alerts yet" in alerts.stdout
