"""Reading commands never write: no store is created, none is migrated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_store.db import current_revision, head_revision, make_engine, migrate
from tests.cli.test_cli import VALID, assert_no_traceback, okr

READING = [["status"], ["runs"], ["alerts"], ["silences"], ["explain", "signups"]]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh Prefect home and no OKR_* settings leaking in (as in test_cli)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    env["COLUMNS"] = "120"
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "q4.yaml").write_text(VALID)
    (tmp_path / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path}/wh.db\n")
    return tmp_path


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_reading_command_in_an_empty_folder_creates_nothing(
    command: list[str], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    result = okr(*command, cwd=tmp_path, env=cli_env)
    assert result.returncode == 4, result.stdout + result.stderr
    assert_no_traceback(result)
    assert "No store yet" in result.stderr
    assert "okr run --all" in result.stderr and "okr demo" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no .okr/ folder, no okr.db


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_reading_command_leaves_an_old_store_as_it_is(
    command: list[str], project: Path, cli_env: dict[str, str]
) -> None:
    path = project / ".okr" / "okr.db"
    path.parent.mkdir()
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine, "upgrade", "0002")
    engine.dispose()
    result = okr(*command, cwd=project, env=cli_env)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "okr db upgrade" in result.stderr
    assert "0002" in result.stderr and head_revision() in result.stderr
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert current_revision(engine) == "0002"  # not migrated behind the user's back
    finally:
        engine.dispose()


def test_a_store_without_tables_is_no_store(project: Path, cli_env: dict[str, str]) -> None:
    path = project / ".okr" / "okr.db"
    path.parent.mkdir()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
    engine.dispose()
    result = okr("status", cwd=project, env=cli_env)
    assert result.returncode == 4
    assert "No store yet" in result.stderr
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        assert sa.inspect(engine).get_table_names() == ["unrelated"]
    finally:
        engine.dispose()


def test_db_upgrade_then_status_reads(project: Path, cli_env: dict[str, str]) -> None:
    assert okr("db", "upgrade", cwd=project, env=cli_env).returncode == 0
    result = okr("status", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "No key results yet" in result.stdout
