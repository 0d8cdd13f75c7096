"""Plausible, PostHog and Mixpanel KRs through the real ``okr`` command, as a user runs it.

One project with a KR on each; ``okr run --all`` at a fixed as-of fetches from the local
stand-in of the three services (``server.py``), then ``okr status --json`` shows the values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_no_traceback, cli_env, okr
from tests.connectors.analytics_b import server
from tests.connectors.analytics_b.conftest import SECRETS

__all__ = ["cli_env"]  # the fixture: a fresh Prefect home, no OKR_* settings leaking in

OKRS = f"""\
cycle: {{name: 2024-Q2, start: 2024-04-01, end: 2024-06-30}}
objectives:
  - id: growth
    title: Grow the shop
    owner: growth@example.com
    key_results:
      - id: visitors
        title: Visitors from 1000 to 2000
        baseline: 1000
        target: 2000
        source:
          type: plausible
          connection: analytics
          site_id: shop.example
          metric: visitors
          period: 7d
          api_key_secret: plausible_key
      - id: signups
        title: Signups from 200 to 400
        baseline: 200
        target: 400
        source:
          type: posthog
          connection: analytics
          project_id: {server.POSTHOG_PROJECT}
          query: >-
            SELECT count() FROM events WHERE event = 'signed_up'
            AND timestamp >= {{date_from}} AND timestamp < {{date_to}}
          api_key_secret: posthog_key
      - id: activations
        title: Activations from 400 to 600 in the cycle
        baseline: 400
        target: 600
        source:
          type: mixpanel
          connection: analytics
          project_id: {server.MIXPANEL_PROJECT}
          event: Signed up
          service_account: {server.MIXPANEL_ACCOUNT}
          service_account_secret: mixpanel_secret
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    running = server.start()
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "analytics.yaml").write_text(OKRS)
    env_lines = [f"OKR_CONNECTIONS__ANALYTICS__URL={server.url_of(running)}"]
    env_lines += [f"OKR_SECRETS__{name.upper()}={value}" for name, value in SECRETS.items()]
    (tmp_path / ".env").write_text("\n".join(env_lines) + "\n")
    yield tmp_path
    running.shutdown()
    running.server_close()


def test_run_all_then_status(project: Path, cli_env: dict[str, str]) -> None:
    result = okr("run", "--all", "--as-of", "2024-05-01T00:00:00Z", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    assert "measured 3 of 3 KRs" in result.stdout
    for secret in SECRETS.values():
        assert secret not in result.stdout + result.stderr
    status = okr("status", "--json", cwd=project, env=cli_env)
    assert status.returncode == 0, status.stdout + status.stderr
    values = {row["id"]: row["value"] for row in json.loads(status.stdout)}
    # Mixpanel: the cycle's days before the as-of (1-30 April), day-of-month events a day.
    assert values == {"visitors": "1234", "signups": "318", "activations": "465"}
