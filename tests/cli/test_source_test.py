"""``okr source test``: fetch now, show value, time and what was sent; store nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.http import HttpSource, HttpSourceConfig
from okr_pipeline.connectors.sql import SqlSource, SqlSourceConfig
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.cli.test_cli import assert_no_traceback, cli_env, okr
from tests.connectors import http_server

__all__ = ["cli_env"]  # the module fixture, imported to be used here

TOKEN = http_server.SECRETS["api_token"]
KEY = http_server.SECRETS["api_key"]
CTX = SourceContext(
    as_of=datetime(2026, 11, 1, tzinfo=UTC),
    cycle_start=datetime(2026, 10, 1, tzinfo=UTC),
    cycle_end=datetime(2027, 1, 1, tzinfo=UTC),
    kr_ref="growth/signups",
)

TWO_KRS = """\
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
        source:
          type: sql
          connection: warehouse
          query: "SELECT count(*) FROM signups WHERE day < :as_of"
      - id: api
        title: API value from 0 to 100
        baseline: 0
        target: 100
        source:
          type: http
          connection: api
          path: /bearer
          value_path: $.total
          auth: {type: bearer, secret: token}
"""
BROKEN = """\
      - id: broken
        title: A query that fails
        baseline: 0
        target: 1
        source: {type: sql, connection: warehouse, query: "SELECT missing FROM signups"}
"""


#: A signups table: days the query counts while they are before the as-of.
DAYS = ("2026-10-02", "2026-10-20", "2026-11-20")


def write_warehouse(url: str, days: tuple[str, ...] = DAYS) -> None:
    """The warehouse the signups KR reads."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE signups (day DATE)"))
        for day in days:
            conn.execute(sa.text("INSERT INTO signups VALUES (:day)"), {"day": day})
    engine.dispose()


def write_project(folder: Path, env: str, okrs: str = TWO_KRS) -> Path:
    """A project folder: the OKR file and ``.env``."""
    (folder / "okrs").mkdir()
    (folder / "okrs" / "q4.yaml").write_text(okrs)
    (folder / ".env").write_text(env)
    return folder


@pytest.fixture
def api_url() -> Iterator[str]:
    """The local test API (``/bearer`` answers 99 to the right token)."""
    server = http_server.start()
    try:
        yield http_server.url_of(server)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def project(tmp_path: Path, api_url: str) -> Path:
    write_warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    return write_project(
        tmp_path,
        f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path / 'wh.db'}\n"
        f"OKR_CONNECTIONS__API__URL={api_url}\n"
        f"OKR_SECRETS__TOKEN={TOKEN}\n",
        TWO_KRS + BROKEN,
    )


def test_one_kr_prints_value_time_and_query(project: Path, cli_env: dict[str, str]) -> None:
    result = okr(
        "source", "test", "signups", "--as-of", "2026-11-01T00:00:00Z", cwd=project, env=cli_env
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"✓ growth/signups: 2 \(\d+\.\d{3} s\)", lines[0]), lines[0]
    assert lines[1:] == [
        f"    sql on connection 'warehouse' (sqlite:///{project / 'wh.db'})",
        "    SELECT count(*) FROM signups WHERE day < :as_of",
        "    parameters: as_of=2026-11-01T00:00:00+00:00",
    ]
    # Nothing stored: not even the store's folder was created.
    assert not (project / ".okr").exists()


def test_all_krs_with_a_failure_exits_3_and_shows_no_secret(
    project: Path, cli_env: dict[str, str]
) -> None:
    result = okr("source", "test", "--all", "--as-of", "2026-12-01", cwd=project, env=cli_env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert_no_traceback(result)
    out = result.stdout
    assert re.search(r"^✓ growth/signups: 3 \(", out, re.M)
    assert re.search(r"^✓ growth/api: 99 \(", out, re.M)
    assert re.search(r"^    GET http://127\.0\.0\.1:\d+/bearer$", out, re.M)
    assert "    headers: Authorization (values not shown)" in out
    assert "    value_path: $.total" in out
    assert re.search(r"^✗ growth/broken: KR growth/broken: sql source .*missing", out, re.M)
    assert "1 of 3 sources failed." in out
    assert TOKEN not in out + result.stderr
    assert not (project / ".okr").exists()


def test_imports_no_prefect(project: Path, cli_env: dict[str, str]) -> None:
    # Answering at once means not importing Prefect (seconds) when no block is used.
    script = (
        "import atexit, sys, runpy\n"
        "atexit.register(lambda: print('prefect imported:', 'prefect' in sys.modules))\n"
        "sys.argv = ['okr', 'source', 'test', 'signups']\n"
        "runpy.run_module('okr_pipeline', run_name='__main__')\n"
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
    assert "prefect imported: False" in result.stdout


def test_names_and_arguments_are_checked(project: Path, cli_env: dict[str, str]) -> None:
    unknown = okr("source", "test", "nope", cwd=project, env=cli_env)
    assert unknown.returncode == 1
    assert "Error: No key result named 'nope' in the OKR files" in unknown.stderr
    typo = okr("source", "test", "growth/signup", cwd=project, env=cli_env)
    assert typo.returncode == 1
    assert typo.stderr.strip() == (
        "Error: No key result named 'growth/signup' in the OKR files. "
        "Did you mean 'growth/signups'?"
    )
    neither = okr("source", "test", cwd=project, env=cli_env)
    assert neither.returncode == 2
    assert "name a KR (objective/kr or its id) or give --all" in neither.stderr
    for result in (unknown, typo, neither):
        assert_no_traceback(result)


def test_sql_describe_shows_the_bound_parameters_and_masks_the_password() -> None:
    url = "postgresql+psycopg://bob:pw-3c9e1f0a2b-SECRET@db.internal/analytics"
    env = SourceEnvironment(connections={"wh": ConnectionSettings(url=SecretStr(url))})
    query = "SELECT 1 WHERE :cycle_start < :as_of"
    config = SqlSourceConfig(type="sql", connection="wh", query=query)
    with SqlSource(env) as source:
        assert source.describe(config, CTX) == (
            "sql on connection 'wh' (postgresql+psycopg://bob:***@db.internal/analytics)\n"
            "SELECT 1 WHERE :cycle_start < :as_of\n"
            "parameters: as_of=2026-11-01T00:00:00+00:00, cycle_start=2026-10-01T00:00:00+00:00"
        )


def test_http_describe_redacts_secrets_in_url_params_and_body() -> None:
    env = SourceEnvironment(secrets={"key": SecretStr(KEY)})
    config = HttpSourceConfig.model_validate(
        {
            "type": "http",
            "method": "POST",
            "url": "https://api.example.com/v1/q?since=${cycle_start}",
            "params": {"api_key": "${secret:key}", "to": "${as_of}"},
            "json_body": {"query": "count", "key": "${secret:key}"},
            "value_path": "$.n",
        }
    )
    with HttpSource(env) as source:
        shown = source.describe(config, CTX)
    assert KEY not in shown
    lines = shown.splitlines()
    assert lines[0].startswith("POST https://api.example.com/v1/q?since=2026-10-01")
    assert lines[1] == "parameters: api_key=***, to=2026-11-01T00:00:00Z"
    assert lines[2].startswith('body: {"key": "***", "query": "count"}')
    assert lines[-1] == "value_path: $.n"
