"""The redaction table of ``tests/okr_core/test_redaction.py`` through every output path.

Each path is driven for real: the ``okr`` command as a subprocess with the secret in
``OKR_STORE_URL``, the HTTP source against a port nobody listens on (the stored
``FetchResult.error``), alert delivery to a closed port (the alert records and the log).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from okr_pipeline.connectors.base import SourceEnvironment
from okr_pipeline.notify import send_messages
from okr_pipeline.run.fetch import FetchRequest, fetch_all
from tests.notify.conftest import message, notification
from tests.okr_core.test_redaction import CASES, Case
from tests.ports import free_port

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)

# Store URLs the okr command refuses without connecting (not SQLite or PostgreSQL).
STORE_CASES = [c for c in CASES if c.secret and c.text.startswith("mysql+pymysql://")]
# Paths with a query string: sent by the HTTP source and by alert channels.
QUERY_CASES = [c for c in CASES if c.secret and c.text.startswith("/v1?")]

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


def ids(cases: list[Case]) -> list[str]:
    return [c.text[:40] for c in cases]


def test_the_table_has_cases_for_every_path() -> None:
    assert len(STORE_CASES) >= 2 and len(QUERY_CASES) >= 8


@pytest.mark.parametrize("case", STORE_CASES, ids=ids(STORE_CASES))
def test_cli_error_line(case: Case, tmp_path: Path) -> None:
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "q4.yaml").write_text(OKRS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), OKR_STORE_URL=case.text, COLUMNS="80")
    result = subprocess.run(
        [sys.executable, "-m", "okr_pipeline", "status", "-p", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    assert case.secret is not None and case.secret not in output, output
    assert case.expected in output, output


@pytest.mark.parametrize("case", QUERY_CASES, ids=ids(QUERY_CASES))
def test_stored_source_error(case: Case) -> None:
    port = free_port()
    sources = [
        # Refused connection: the client's message quotes the URL with its query.
        {"type": "http", "url": f"http://127.0.0.1:{port}{case.text}", "retries": 0},
        # A source the connector rejects: the validation message quotes the input.
        {"type": "http", "url": f"ftp://127.0.0.1:{port}{case.text}"},
    ]
    requests = [
        FetchRequest(i, f"growth/kr{i}", {**s, "value_path": "$.total"}, NOW, NOW, NOW)
        for i, s in enumerate(sources)
    ]
    results = fetch_all(requests, SourceEnvironment({}, {}), max_concurrency=2, clock=lambda: NOW)
    assert [r.error_kind for r in results] == ["retriable", "config"]
    for result in results:
        assert result.error is not None and case.secret is not None
        assert case.secret not in result.error, result.error
    # Pydantic shortens a long input in the middle, so only the client's message holds it whole.
    assert case.expected in (results[0].error or ""), results[0].error


@pytest.mark.parametrize("case", QUERY_CASES, ids=ids(QUERY_CASES))
def test_alert_records_and_log(case: Case, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    channels = [
        f"json://127.0.0.1:{port}{case.text}",
        f"json://okr:{case.secret}@127.0.0.1:{port}/hook",
    ]
    caplog.set_level(logging.DEBUG)
    records = send_messages(
        [message("podcasts", channels, notification())],
        {},
        run_id=7,
        now=NOW,
        attempts=2,
        sleep=lambda _: None,
    )
    assert [r.delivery for r in records] == ["failed", "failed"]
    assert case.secret is not None
    for record in records:
        assert case.secret not in record.channel and case.secret not in (record.error or "")
    assert case.secret not in repr(records)
    assert caplog.records and case.secret not in caplog.text, caplog.text
