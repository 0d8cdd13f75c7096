"""Setup problems through the real ``okr`` command: one red line, exit 1, never "report it".

Each problem is provoked for real (a port nobody listens on, a role that may not log in, a
driver whose import fails, a folder nothing may be written in); the store URL is given as
``OKR_STORE_URL`` with a password that must never be printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.fs_faults import read_only
from tests.ports import free_port

OKR = [sys.executable, "-m", "okr_pipeline"]
SECRET = "s3cret-Pa55"

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
        source: {type: sql, connection: warehouse, query: "SELECT 12"}
"""


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No OKR_* or PREFECT_* settings leaking in; a Prefect home of our own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    env["COLUMNS"] = "80"  # narrow: a long message must still be one line
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "okrs").mkdir(parents=True)
    (folder / "okrs" / "q4.yaml").write_text(OKRS)
    (folder / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path}/wh.db\n")
    return folder


def okr(
    *args: str, env: dict[str, str], store_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    if store_url is not None:
        env = {**env, "OKR_STORE_URL": store_url}
    return subprocess.run(
        [*OKR, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def one_line_setup_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``Error:`` line of a setup problem; fails on anything else."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "report it" not in output, output
    assert SECRET not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert "OKR_STORE_URL" in lines[0], output
    return lines[0]


def test_unreachable_store_on_status_and_run(project: Path, cli_env: dict[str, str]) -> None:
    url = f"postgresql+psycopg://okr:{SECRET}@127.0.0.1:{free_port()}/okr"
    for command in (["status"], ["run", "--all"]):
        line = one_line_setup_error(okr(*command, "-p", str(project), env=cli_env, store_url=url))
        assert "postgresql+psycopg://okr:***@127.0.0.1" in line
        assert "Connection refused" in line


@pytest.fixture
def nologin_url(postgres_admin: sa.Engine) -> Iterator[str]:
    name = f"okr_nologin_{uuid.uuid4().hex[:8]}"
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} NOLOGIN PASSWORD '{SECRET}'"))
    yield postgres_admin.url.set(username=name, password=SECRET).render_as_string(
        hide_password=False
    )
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))


@pytest.mark.postgres
def test_refused_login(project: Path, cli_env: dict[str, str], nologin_url: str) -> None:
    # The local server trusts 127.0.0.1, so a wrong password is accepted there; a role that
    # may not log in is refused at the same step. (tests/okr_store/test_db_errors.py checks a
    # wrong password on a server of its own that checks passwords.)
    line = one_line_setup_error(
        okr("status", "-p", str(project), env=cli_env, store_url=nologin_url)
    )
    assert "not permitted to log in" in line and "fix the user or password" in line


@pytest.mark.postgres
def test_missing_database(
    project: Path, cli_env: dict[str, str], postgres_admin: sa.Engine
) -> None:
    url = postgres_admin.url.set(database="okr_nothing_here", password=SECRET)
    line = one_line_setup_error(
        okr("status", "-p", str(project), env=cli_env, store_url=url.render_as_string(False))
    )
    assert "does not exist" in line and "createdb" in line


def test_unknown_scheme_and_unsupported_database(project: Path, cli_env: dict[str, str]) -> None:
    for url in (f"postgress://okr:{SECRET}@db/okr", f"mysql+pymysql://okr:{SECRET}@db/okr"):
        line = one_line_setup_error(okr("status", "-p", str(project), env=cli_env, store_url=url))
        assert "SQLite or PostgreSQL" in line and "okr:***@db" in line


def test_missing_psycopg_names_the_extra(
    project: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # psycopg is installed here: a sitecustomize on PYTHONPATH makes its import fail, as
    # where 'okr-pipeline[postgres]' was never installed.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'psycopg' or name.startswith('psycopg.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    env = {**cli_env, "PYTHONPATH": str(hook)}
    url = f"postgresql://okr:{SECRET}@127.0.0.1:5432/okr"
    line = one_line_setup_error(okr("status", "-p", str(project), env=env, store_url=url))
    assert "pip install 'okr-pipeline[postgres]'" in line


def test_unwritable_project_folder(project: Path, cli_env: dict[str, str]) -> None:
    # Reading commands never create the store; the first writing one does.
    with read_only(project):
        result = okr("db", "upgrade", "-p", str(project), env=cli_env)
    line = one_line_setup_error(result)
    assert f"{project / '.okr'}" in line and f"make {project} writable" in line


def test_read_only_store_folder_on_status_and_run(project: Path, cli_env: dict[str, str]) -> None:
    assert okr("db", "upgrade", "-p", str(project), env=cli_env).returncode == 0  # creates it
    with read_only(project / ".okr"):
        # SQLite keeps its write-ahead log beside the store, so even reading needs the
        # folder writable: both say so in one line.
        for command in (["status"], ["run", "--all"]):
            line = one_line_setup_error(okr(*command, "-p", str(project), env=cli_env))
            assert f"the store's folder {project / '.okr'}" in line and "writable" in line


def test_file_in_place_of_the_store_folder(project: Path, cli_env: dict[str, str]) -> None:
    (project / ".okr").write_text("")
    line = one_line_setup_error(okr("db", "upgrade", "-p", str(project), env=cli_env))
    assert "a file of that name is in the way" in line


def test_prefect_home_that_cannot_be_written(
    project: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # The temporary Prefect server (okr run --prefect) keeps its database in PREFECT_HOME:
    # where that cannot be created the server stops at startup, and okr says so instead of
    # "report it".
    locked = tmp_path / "locked"
    locked.mkdir()
    env = {**cli_env, "PREFECT_HOME": str(locked / "prefect")}
    with read_only(locked):
        result = okr("run", "--all", "--prefect", "-p", str(project), env=env)
        # Without --prefect, nothing needs PREFECT_HOME: the run goes ahead.
        plain = okr("run", "--all", "-p", str(project), env=env)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "report it" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    assert "the temporary Prefect server stopped" in errors[0]
    assert "unable to open database file" in errors[0] and "PREFECT_HOME" in errors[0]
