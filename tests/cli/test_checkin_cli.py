"""``okr checkin`` and ``okr note`` through the real command, on a SQLite store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.okr_store.store import Store
from tests.cli.test_cli import assert_no_traceback, cli_env, okr
from tests.run.test_checkin import OKRS

__all__ = ["cli_env"]  # the fixture, imported to be used here

AS_OF = "2026-11-02T09:00:00Z"  # within the test cycle, and in the past


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "q4.yaml").write_text(OKRS)
    (tmp_path / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path}/wh.db\n")
    return tmp_path


def _store(project: Path) -> Store:
    return Store.open(load_settings(project).resolved_store_url())


def test_checkin_prints_the_status_and_records_the_author(
    project: Path, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "OKR_AUTHOR": "alice"}
    first = okr("checkin", "team/nps", "10", "--as-of", "2026-10-26T09:00Z", cwd=project, env=env)
    assert first.returncode == 0, first.stderr
    result = okr(
        "checkin", "nps", "30.50", "--note", "pulse survey", "--as-of", AS_OF,
        cwd=project, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "✓ team/nps: 30.50 checked in as of 2026-11-02 09:00 UTC by alice (run "
    )
    assert lines[1].startswith("  off_track → on_track, score 0.68: pace only")
    assert len(lines) == 2
    store = _store(project)
    try:
        kr_id = next(k.kr_id for k in store.active_key_results() if k.ref == "team/nps")
        (row, _) = store.kr_history(kr_id)
        assert (str(row.value), row.kind, row.author, row.note) == (
            "30.50", "checkin", "alice", "pulse survey",
        )  # fmt: skip
    finally:
        store.close()
    # --author wins over $OKR_AUTHOR.
    again = okr("checkin", "team/launch", "1", "--author", "bob", cwd=project, env=env)
    assert again.returncode == 0, again.stderr
    assert "by bob" in again.stdout


def test_note(project: Path, cli_env: dict[str, str]) -> None:
    result = okr(
        "note", "growth/signups", "campaign paused this week", "--as-of", AS_OF,
        "--author", "dana", cwd=project, env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "✓ Note added to growth/signups as of 2026-11-02 09:00 UTC by dana."
    )
    store = _store(project)
    try:
        assert [(n.author, n.text) for n in store.notes()] == [
            ("dana", "campaign paused this week")
        ]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["checkin", "team/npz", "3"], "Error: no KR named 'team/npz'. Did you mean 'team/nps'?"),
        (
            ["checkin", "team/nps", "three"],
            "Error: value 'three' for team/nps is not a number; give digits, e.g. 42 or -3.5",
        ),
        (
            ["checkin", "growth/signups", "120"],
            "Error: growth/signups is measured by its 'sql' source, so it takes no value by "
            "hand: add context with 'okr note growth/signups TEXT', or declare 'source: "
            "{type: manual}' to check its values in",
        ),
        (
            ["checkin", "team/nps", "3", "--as-of", "2026-09-01"],
            "Error: as-of 2026-09-01 00:00 UTC is outside team/nps's cycle 2026-Q4 "
            "(2026-10-01 to 2026-12-31); give an as-of within it",
        ),
        (
            ["checkin", "team/nps", "3", "--as-of", "yesterday"],
            "Error: --as-of 'yesterday' is not an ISO 8601 date or time (e.g. "
            "2026-11-24T09:00:00Z)",
        ),
        (
            ["note", "team/nps", " "],
            "Error: the note is empty: say what happened, e.g. 'campaign paused'",
        ),
    ],
)  # fmt: skip
def test_mistakes_are_one_line(
    project: Path, cli_env: dict[str, str], args: list[str], message: str
) -> None:
    when = [] if "--as-of" in args else ["--as-of", AS_OF]
    result = okr(*args, *when, cwd=project, env={**cli_env, "OKR_AUTHOR": "a"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == message
    assert_no_traceback(result)


def test_checkin_never_imports_prefect(project: Path, cli_env: dict[str, str]) -> None:
    script = (
        "import sys\n"
        "from okr_pipeline.cli.main import main\n"
        f"sys.argv = ['okr', 'checkin', 'team/nps', '12', '--as-of', '{AS_OF}', '--author', 'x']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "print('prefect' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False"


def test_help_names_the_author_variable(project: Path, cli_env: dict[str, str]) -> None:
    result = okr("checkin", "--help", cwd=project, env=cli_env)
    assert result.returncode == 0
    assert "OKR_AUTHOR" in result.stdout and "--note" in result.stdout
