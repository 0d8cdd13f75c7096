"""``okr validate`` on files that once crashed or hung it: exit 1, one line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.okr_core.test_bad_files import OKR as BARE_OKR
from tests.okr_core.test_bad_files import alerts_bomb, nested_alias_bomb

OKR_CMD = [sys.executable, "-m", "okr_pipeline"]
OKR = BARE_OKR.replace("{type: sql, query:", "{type: sql, connection: warehouse, query:")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment of our own: a fresh Prefect home, no OKR_* settings leaking in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    clean["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    clean["COLUMNS"] = "200"
    return clean


def validate(project: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    result = subprocess.run(
        [*OKR_CMD, "validate"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, time.perf_counter() - started


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> list[str]:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "unexpected" not in output, output
    return result.stderr.splitlines()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "okrs").mkdir()
    (tmp_path / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path}/wh.db\n")
    return tmp_path


def test_validate_reports_each_bad_file_on_one_line(project: Path, env: dict[str, str]) -> None:
    files = {
        "bomb.yaml": nested_alias_bomb(9, 9) + OKR.replace("growth", "g1"),
        "zone.yaml": OKR.replace("growth", "g2").replace("Europe/Berlin", "Europe"),
        "long-zone.yaml": OKR.replace("growth", "g3").replace("Europe/Berlin", "A" * 256),
        "maybe.yaml": OKR.replace("growth", "g4") + "        x: !!bool maybe\n",
        "deep.yaml": OKR.replace("growth", "g5").replace(
            "baseline: 100", "baseline: " + "[" * 5000 + "]" * 5000
        ),
    }
    for name, text in files.items():
        (project / "okrs" / name).write_text(text)
    result, elapsed = validate(project, env)
    lines = assert_clean_failure(result)
    expected = {
        "bomb.yaml:5: too many alias expansions",
        "deep.yaml:9: the data is nested more than 64 levels deep",
        "long-zone.yaml:1: cycle.timezone: timezone 'AAAA",
        "maybe.yaml:12: 'maybe' is not a boolean; write true or false",
        "zone.yaml:1: cycle.timezone: timezone 'Europe' is not a time zone",
    }
    problems = [line for line in lines if line.startswith("✗ ")]
    assert len(problems) == len(expected), lines
    for words in expected:
        assert sum(words in line for line in problems) == 1, (words, lines)
    assert lines[-1].startswith("Error: 5 problems"), lines
    # The bombs once took 31 s and more; now the command's start-up dominates.
    assert elapsed < 30, elapsed


def test_validate_reports_an_alerts_bomb_on_one_line(project: Path, env: dict[str, str]) -> None:
    (project / "okrs" / "q4.yaml").write_text(OKR)
    (project / "alerts.yaml").write_text(alerts_bomb())
    result, elapsed = validate(project, env)
    lines = assert_clean_failure(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ") and "alerts.yaml:5: too many alias expansions" in lines[0]
    assert elapsed < 30, elapsed


def test_validate_reports_a_bad_value_in_alerts_yaml(project: Path, env: dict[str, str]) -> None:
    (project / "okrs" / "q4.yaml").write_text(OKR)
    (project / "alerts.yaml").write_text("defaults:\n  enabled: !!bool maybe\n")
    result, _ = validate(project, env)
    lines = assert_clean_failure(result)
    assert lines == [
        f"Error: {project / 'alerts.yaml'}:2: 'maybe' is not a boolean; write true or false"
    ], lines
