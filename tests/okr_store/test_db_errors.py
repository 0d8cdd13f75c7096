"""Setup problems with the store become one-line StoreUnavailableErrors, never bugs.

Each test provokes the problem for real (a port nobody listens on, a role that may not log
in, a folder nothing may be written in, a driver that cannot be imported) and checks the
message names the setting and the fix, masks the password and chains the cause.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.errors import ConfigError, StoreUnavailableError
from okr_pipeline.okr_store.db import make_engine, upgrade
from okr_pipeline.okr_store.store import Store
from okr_pipeline.okr_store.store_errors import store_unavailable
from tests.fs_faults import read_only

SECRET = "s3cret-Pa55"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def open_error(url: str) -> StoreUnavailableError:
    with pytest.raises(StoreUnavailableError) as caught:
        Store.open(url)
    error = caught.value
    message = str(error)
    assert "\n" not in message
    assert SECRET not in message
    assert "OKR_STORE_URL" in message
    assert isinstance(error, ConfigError)
    return error


def test_unreachable_server_names_the_setting_and_masks_the_password() -> None:
    port = free_port()
    error = open_error(f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:{port}/okr")
    assert f"postgresql+psycopg://bob:***@127.0.0.1:{port}/okr" in str(error)
    assert "Connection refused" in str(error) and "start the database server" in str(error)
    assert isinstance(error.__cause__, sa.exc.OperationalError)


def test_bare_postgresql_url_is_masked_too() -> None:
    error = open_error(f"postgresql://bob:{SECRET}@127.0.0.1:{free_port()}/okr")
    assert "bob:***@" in str(error)


@pytest.fixture
def pg_role(postgres_admin: sa.Engine) -> Iterator[str]:
    """A role that has a password but may not log in (NOLOGIN)."""
    name = f"okr_nologin_{uuid.uuid4().hex[:8]}"
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} NOLOGIN PASSWORD '{SECRET}'"))
    yield name
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))


@pytest.mark.postgres
def test_refused_login_names_the_user_and_password_setting(
    postgres_admin: sa.Engine, pg_role: str
) -> None:
    # The local server trusts 127.0.0.1, so a wrong password cannot be provoked there: a
    # role that may not log in is refused at the same step (see the scram cluster below).
    url = postgres_admin.url.set(username=pg_role, password=SECRET)
    error = open_error(url.render_as_string(hide_password=False))
    assert "not permitted to log in" in str(error)
    assert "fix the user or password in OKR_STORE_URL" in str(error)


@pytest.mark.postgres
def test_unknown_role_is_a_refused_login(postgres_admin: sa.Engine) -> None:
    url = postgres_admin.url.set(username="okr_nobody_here", password=SECRET)
    error = open_error(url.render_as_string(hide_password=False))
    assert 'role "okr_nobody_here" does not exist' in str(error)
    assert "fix the user or password" in str(error)


@pytest.mark.postgres
def test_missing_database_says_to_create_it(postgres_admin: sa.Engine) -> None:
    url = postgres_admin.url.set(database="okr_no_such_db", password=SECRET)
    error = open_error(url.render_as_string(hide_password=False))
    assert 'database "okr_no_such_db" does not exist' in str(error)
    assert "createdb" in str(error)


@pytest.fixture
def user_without_rights(postgres_url: str, postgres_admin: sa.Engine) -> Iterator[str]:
    """A role that may log in to a fresh database but not create tables in it."""
    name = f"okr_reader_{uuid.uuid4().hex[:8]}"
    database = sa.engine.make_url(postgres_url).database
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD '{SECRET}'"))
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {name}"))
    admin.dispose()
    url = sa.engine.make_url(postgres_url).set(username=name, password=SECRET)
    yield url.render_as_string(hide_password=False)
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'REVOKE ALL ON DATABASE "{database}" FROM {name}'))
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))


@pytest.mark.postgres
def test_user_without_create_rights_is_told_to_grant_them(user_without_rights: str) -> None:
    error = open_error(user_without_rights)
    assert "permission denied" in str(error) and "GRANT" in str(error)


def test_unknown_scheme_lists_the_supported_stores() -> None:
    error = open_error(f"postgress://bob:{SECRET}@db/okr")
    assert "postgress://bob:***@db/okr" in str(error)
    assert "SQLite or PostgreSQL" in str(error)


def test_unsupported_database_is_refused_before_connecting() -> None:
    error = open_error(f"mysql+pymysql://bob:{SECRET}@127.0.0.1:{free_port()}/okr")
    assert "runs on SQLite or PostgreSQL" in str(error)


def test_unknown_driver_and_unparsable_url() -> None:
    assert "does not know" in str(open_error(f"postgresql+nodriver://bob:{SECRET}@db/okr"))
    assert "is not a database URL" in str(open_error("not a url"))


def test_missing_driver_module_names_the_package() -> None:
    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed here")
    error = open_error(f"postgresql+pg8000://bob:{SECRET}@127.0.0.1:5432/okr")
    assert "'pg8000', which is not installed: pip install pg8000" in str(error)
    assert isinstance(error.__cause__, ImportError)


def test_missing_psycopg_names_the_extra_to_install(tmp_path: Path) -> None:
    # psycopg is installed in the test environment: a meta-path hook in a child process
    # makes its import fail as it would where the extra was never installed.
    script = tmp_path / "no_psycopg.py"
    script.write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'psycopg' or name.startswith('psycopg.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from okr_pipeline.okr_store.store import Store\n"
        "from okr_pipeline.okr_core.errors import StoreUnavailableError\n"
        "try:\n"
        f"    Store.open('postgresql://bob:{SECRET}@127.0.0.1:5432/okr')\n"
        "except StoreUnavailableError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'okr-pipeline[postgres]'" in result.stdout
    assert "'psycopg'" in result.stdout and SECRET not in result.stdout


def test_file_where_the_store_folder_goes(tmp_path: Path) -> None:
    (tmp_path / ".okr").write_text("not a folder")
    error = open_error(f"sqlite:///{tmp_path / '.okr' / 'okr.db'}")
    assert "a file of that name is in the way" in str(error)
    assert isinstance(error.__cause__, OSError)


def test_unwritable_project_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with read_only(project):
        error = open_error(f"sqlite:///{project / '.okr' / 'okr.db'}")
    assert f"make {project} writable" in str(error)


def test_read_only_store_folder(tmp_path: Path) -> None:
    folder = tmp_path / ".okr"
    url = f"sqlite:///{folder / 'okr.db'}"
    Store.open(url).close()
    with read_only(folder):
        error = open_error(url)
    assert f"the store's folder {folder} and its files must be writable" in str(error)


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "okr.db"
    path.write_bytes(b"this is no SQLite file, just some text that is long enough" * 20)
    error = open_error(f"sqlite:///{path}")
    assert "is not a usable SQLite database" in str(error)


def test_bugs_are_not_setup_problems(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with pytest.raises(sa.exc.OperationalError) as caught, engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM no_such_table"))
    engine.dispose()
    assert store_unavailable(caught.value, sqlite_url) is None
    assert store_unavailable(ValueError("x"), sqlite_url) is None
    assert store_unavailable(OSError("no file name"), sqlite_url) is None


# -- a real wrong password: a PostgreSQL cluster of the test's own, with scram auth -------


def _postgres_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        path = Path(found.stdout.strip())
        if (path / "initdb").exists():
            return path
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[str]:
    """URL (without password) of a PostgreSQL server that checks passwords (scram)."""
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("initdb is not installed: cannot start a PostgreSQL that checks passwords")
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user to run initdb as")
        prefix = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
    # Not under pytest's temporary folder: the server's user must be able to reach it.
    with tempfile.TemporaryDirectory(prefix="okr-pgscram-") as folder:
        yield from _scram_cluster(bindir, prefix, owner, Path(folder))


def _scram_cluster(
    bindir: Path, prefix: list[str], owner: pwd.struct_passwd | None, base: Path
) -> Iterator[str]:
    base.chmod(0o755)
    (base / "pw").write_text(SECRET + "\n")
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
        os.chown(base / "pw", owner.pw_uid, owner.pw_gid)
    data = base / "data"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "scram-sha-256", "-U", "postgres"]
    init = subprocess.run(
        [*prefix, *initdb, "--pwfile", str(base / "pw")],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr.strip()[:200]}")
    port = free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run([*pg_ctl, "-o", options, "-w", "-l", str(base / "log"), "start"], check=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)


def test_wrong_password_on_a_server_that_checks_it(password_postgres: str) -> None:
    good = password_postgres.replace("postgres@", f"postgres:{SECRET}@")
    Store.open(good).close()  # the right password works: the server is really there
    error = open_error(password_postgres.replace("postgres@", f"postgres:wrong-{SECRET}@"))
    assert 'password authentication failed for user "postgres"' in str(error)
    assert "postgresql+psycopg://postgres:***@127.0.0.1" in str(error)
