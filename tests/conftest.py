"""Shared fixtures: real database servers (each test given a database of its own), one
temporary Prefect server for the session, demo projects.

The servers are found through ``OKR_TEST_POSTGRES_URL`` and ``OKR_TEST_MARIADB_URL``
(defaults: the local servers on 127.0.0.1). On a laptop without them the tests that need
them skip; with ``OKR_REQUIRE_DB=1`` (set by ``.ci/run``) a missing server fails instead.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from okr_pipeline.flows.prefect_env import apply_quiet_defaults
from tests.ports import free_port

# Prefect's log lines stay off the test output (flows log to Prefect's handlers).
apply_quiet_defaults(console_logs=False)

POSTGRES_URL = os.environ.get(
    "OKR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MARIADB_URL = os.environ.get("OKR_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_DB = os.environ.get("OKR_REQUIRE_DB") == "1"


def _server_or_skip(admin_url: str, name: str) -> sa.Engine:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "server not there"
        engine.dispose()
        message = f"{name} server not reachable at {make_url(admin_url).render_as_string()}: {exc}"
        if REQUIRE_DB:
            pytest.fail(message)
        pytest.skip(message)
    return engine


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    engine = _server_or_skip(POSTGRES_URL, "PostgreSQL")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def mariadb_admin() -> Iterator[sa.Engine]:
    engine = _server_or_skip(MARIADB_URL, "MariaDB")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = f"okr_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_admin.url.set(database=name)
    yield url.render_as_string(hide_password=False)
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def mariadb_url(mariadb_admin: sa.Engine) -> Iterator[str]:
    """URL of a fresh, empty MariaDB database, dropped after the test."""
    name = f"okr_test_{uuid.uuid4().hex[:12]}"
    with mariadb_admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    url = mariadb_admin.url.set(database=name)
    yield url.render_as_string(hide_password=False)
    with mariadb_admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """URL of a fresh SQLite file database."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server and database shared by every flow test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def demo_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A demo project (warehouse, OKR files, .env) with its analytics API running."""
    with demo_project_in(tmp_path / "demo", monkeypatch) as project:
        yield project


@contextlib.contextmanager
def demo_project_in(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The demo project in ``directory`` with its API up, for fixtures of any scope."""
    from okr_pipeline.demo.analytics_api import TOKEN_SECRET, start_in_background
    from okr_pipeline.demo.project import create_demo_project
    from okr_pipeline.okr_core.settings import load_settings

    for name in list(os.environ):
        if (
            name.startswith("OKR_")
            and name not in ("OKR_REQUIRE_DB",)
            and not name.startswith("OKR_TEST_")
        ):
            monkeypatch.delenv(name)
    port = free_port()
    project = create_demo_project(directory, port=port)
    token = load_settings(project).secrets[TOKEN_SECRET].get_secret_value()
    server: ThreadingHTTPServer = start_in_background(project / "warehouse.db", token, port)
    try:
        yield project
    finally:
        server.shutdown()
        server.server_close()
