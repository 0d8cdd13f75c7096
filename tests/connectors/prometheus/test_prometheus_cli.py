"""A project with Prometheus KRs, through the real CLI: ``okr run --all``, then ``status``.

The project's connections point at the test's real Prometheus, directly and through the
proxy (bearer token from the project's ``.env``); the run is as of a fixed moment, so
``time()`` and ``vector(...)`` give exact values.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_no_traceback, cli_env, okr
from tests.connectors.prometheus import proxy
from tests.connectors.prometheus.server import Prometheus

__all__ = ["cli_env"]  # the fixture, imported for pytest

AS_OF = "2026-11-02T12:00:00Z"
T = 1_793_620_800  # AS_OF in unix seconds

OKRS = """\
cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
objectives:
  - id: ops
    title: Run a reliable service
    owner: o@example.com
    key_results:
      - id: requests
        title: Requests from 0 to 100
        baseline: 0
        target: 100
        source: {type: prometheus, connection: prom, query: "vector(42)"}
      - id: clock
        title: Evaluated at the as-of
        baseline: 0
        target: 2000000000
        source:
          type: prometheus
          connection: proxied
          query: "time()"
          auth: {type: bearer, secret: prom_token}
      - id: daily
        title: Mean of the last day
        baseline: 0
        target: 2000000000
        source:
          type: prometheus
          connection: prom
          query: "time()"
          mode: range
          period: 1d
          step: 1h
          reduce: avg
      - id: missing
        title: A series that does not exist
        baseline: 0
        target: 1
        source: {type: prometheus, connection: prom, query: 'up{job="nope"}'}
"""


def test_run_and_status(
    prometheus: Prometheus, prom_proxy: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "ops.yaml").write_text(OKRS)
    (tmp_path / ".env").write_text(
        f"OKR_CONNECTIONS__PROM__URL={prometheus.url}\n"
        f"OKR_CONNECTIONS__PROXIED__URL={prom_proxy}/bearer\n"
        f"OKR_SECRETS__PROM_TOKEN={proxy.TOKEN}\n"
    )
    assert okr("validate", cwd=tmp_path, env=cli_env).returncode == 0
    result = okr("run", "--all", "--as-of", AS_OF, cwd=tmp_path, env=cli_env)
    assert_no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "measured 4 of 4 KRs as of 2026-11-02T12:00:00+00:00: 1 no_data, 3 on_track" in (
        result.stdout
    )
    assert proxy.TOKEN not in result.stdout + result.stderr
    status = okr("status", "--json", cwd=tmp_path, env=cli_env)
    rows = {row["id"]: row for row in json.loads(status.stdout)}
    assert rows["requests"]["value"] == "42"
    assert rows["requests"]["progress"] == pytest.approx(0.42)
    assert Decimal(rows["clock"]["value"]) == T
    assert Decimal(rows["daily"]["value"]) == T - 43200
    assert rows["missing"]["value"] is None and rows["missing"]["status"] == "no_data"
