"""A store that fails mid-run loses nothing; one bad value sinks only its own KR.

The store is a PostgreSQL server of the test's own (initdb on a free port), so that the
test can stop it while a run is fetching: the local API a KR reads stops it before it
answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from tests.cli.test_cli import assert_no_traceback, cli_env, okr
from tests.ports import free_port

__all__ = ["cli_env"]

PG_BIN = Path("/usr/lib/postgresql")


def _pg_tool(name: str) -> str | None:
    for version in sorted(PG_BIN.glob("*"), reverse=True):
        if (version / "bin" / name).exists():
            return str(version / "bin" / name)
    return None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder, run as the ``postgres`` user."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="okr-pg-"))
        self.port = free_port()
        shutil.chown(self.dir, "postgres")
        self._run(_pg_tool("initdb") or "initdb", "-D", str(self.dir / "data"), "-A", "trust",
                  "-U", "postgres")  # fmt: skip
        self.start()

    @property
    def url(self) -> str:
        # A password the server does not need (trust), to check it is never shown.
        return f"postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(_pg_tool("pg_ctl") or "pg_ctl", "-D", str(self.dir / "data"), "-o", options,
                  "-l", str(self.dir / "log"), "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._run(_pg_tool("pg_ctl") or "pg_ctl", "-D", str(self.dir / "data"), "-m",
                  "immediate", "-w", "stop")  # fmt: skip

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if os.geteuid() != 0 or _pg_tool("initdb") is None or shutil.which("runuser") is None:
        if os.environ.get("OKR_REQUIRE_DB"):
            pytest.fail("a private PostgreSQL cluster is needed (root, initdb and runuser)")
        pytest.skip("needs root and PostgreSQL's initdb to run a private server")
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.remove()


class FaultyApi(BaseHTTPRequestHandler):
    """Answers ``{"value": ...}`` per path; ``/stop-store`` first stops the store."""

    values: ClassVar[dict[str, Any]] = {}
    store: ClassVar[PrivatePostgres | None] = None

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/stop-store" and FaultyApi.store is not None:
            FaultyApi.store.stop()
            FaultyApi.store = None  # once
        body = json.dumps({"value": FaultyApi.values.get(path, 7)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultyApi)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        FaultyApi.values, FaultyApi.store = {}, None
        server.shutdown()
        server.server_close()


def _project(root: Path, store_url: str, api: str, paths: list[str]) -> Path:
    krs = "".join(
        f"""
      - id: kr{n}
        title: KR {n} from 0 to 10
        baseline: 0
        target: 10
        source: {{type: http, url: "{api}{path}", value_path: "$.value"}}"""
        for n, path in enumerate(paths)
    )
    (root / "okrs").mkdir(parents=True)
    (root / "okrs" / "q4.yaml").write_text(
        "cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}\n"
        "objectives:\n  - id: o\n    title: O\n    owner: o@example.com\n"
        f"    key_results:{krs}\n"
    )
    (root / ".env").write_text(f"OKR_STORE_URL={store_url}\n")
    return root


def _count(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def test_store_stopped_mid_run_loses_nothing(
    tmp_path: Path, private_postgres: PrivatePostgres, api: str, cli_env: dict[str, str]
) -> None:
    project = _project(tmp_path / "p", private_postgres.url, api, ["/a", "/stop-store", "/b"])
    FaultyApi.store = private_postgres
    failed = okr("run", "--all", cwd=project, env=cli_env)
    # A setup error (exit 1) on one line, the URL masked, where the values went said.
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert_no_traceback(failed)
    assert "s3cret-pw" not in failed.stdout + failed.stderr
    assert "Nothing was lost: the 3 values fetched were kept in" in failed.stderr
    spooled = list((project / ".okr" / "spool").glob("*.json"))
    assert len(spooled) == 1

    private_postgres.start()
    FaultyApi.values = {"/a": 8, "/stop-store": 8, "/b": 8}
    again = okr("run", "--all", cwd=project, env=cli_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert list((project / ".okr" / "spool").glob("*.json")) == []
    # Both runs' values are stored, once each: none lost, none duplicated.
    url = private_postgres.url
    per_as_of = _count(
        url, "SELECT as_of, count(*), sum(value) FROM measurements GROUP BY 1 ORDER BY 1"
    )
    assert [(n, total) for _, n, total in per_as_of] == [(3, 21), (3, 24)]
    assert _count(url, "SELECT count(*) FROM evaluations") == [(6,)]
    statuses = sorted(s for (s,) in _count(url, "SELECT status FROM runs"))
    # The interrupted run could not close its row (the store was down); its values were
    # stored by a run of their own, and the next run's lease check will close it.
    assert statuses.count("completed") == 2


@pytest.mark.usefixtures("prefect_harness")
def test_out_of_range_values_fail_their_kr_only(
    tmp_path: Path, private_postgres: PrivatePostgres, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from okr_pipeline.flows.update import update_key_results

    for name in [n for n in os.environ if n.startswith("OKR_") and n != "OKR_REQUIRE_DB"]:
        monkeypatch.delenv(name)
    FaultyApi.values = {"/huge": "1e200000", "/huger": "1e999999999", "/fine": "12.5"}
    project = _project(tmp_path / "p", private_postgres.url, api, ["/huge", "/huger", "/fine"])
    for _ in range(2):  # on every run, not once
        summary = update_key_results(project_dir=str(project), all_krs=True)
        assert summary.measured == 3 and summary.errors == 2
        assert all("out of the range this product stores" in m for _, m in summary.failed)
    rows = _count(
        private_postgres.url,
        "SELECT k.key, m.outcome, m.value FROM measurements m "
        "JOIN key_results k ON k.id = m.kr_id ORDER BY k.key, m.as_of",
    )
    assert [(key, outcome) for key, outcome, _ in rows] == [
        ("kr0", "error"), ("kr0", "error"), ("kr1", "error"), ("kr1", "error"),
        ("kr2", "ok"), ("kr2", "ok"),
    ]  # fmt: skip
    assert str(rows[-1][2]) == "12.5"
