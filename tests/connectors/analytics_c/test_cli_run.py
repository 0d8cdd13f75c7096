"""GA4, Amplitude and Datadog KRs through the real ``okr`` command, against the local server.

One project, one KR per connector, ``okr run --all`` at a fixed as-of, then ``okr status
--json``: the values stored are exactly those the documented answers hold. The server
judges the sign-in's JWT by the real clock here, since ``okr`` signs with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.analytics_c import server
from tests.connectors.analytics_c.conftest import make_key

OKR = [sys.executable, "-m", "okr_pipeline"]

PROJECT = """\
cycle: {name: 2024-Q2, start: 2024-04-01, end: 2024-06-30}
objectives:
  - id: growth
    title: Grow the product
    owner: growth@example.com
    key_results:
      - id: sessions
        title: Sessions over 28 days from 300 to 600
        baseline: 300
        target: 600
        source:
          type: google_analytics
          connection: vendor
          property_id: "123456789"
          metric: sessions
          period: 28d
          credentials_secret: ga_key
      - id: signups
        title: Sign-up events a week from 50 to 100
        baseline: 50
        target: 100
        source:
          type: amplitude
          connection: vendor
          event_type: Sign Up
          metric: totals
          period: 7d
          api_key_secret: amp_key
          secret_key_secret: amp_secret
      - id: hits
        title: Average hourly hits from 10 to 20
        baseline: 10
        target: 20
        source:
          type: datadog
          connection: vendor
          query: "avg:web.hits{env:prod}"
          period: 1d
          reduce: avg
          api_key_secret: dd_api
          application_key_secret: dd_app
"""


@pytest.fixture
def live_server() -> Iterator[Any]:
    running = server.start()  # the real clock: okr signs its JWT with it
    yield running
    running.shutdown()
    running.server_close()


def okr(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OKR, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_run_all_then_status(tmp_path: Path, live_server: Any) -> None:
    url = server.url_of(live_server)
    key, private = make_key(f"{url}/token")
    live_server.public_keys[server.SERVICE_ACCOUNT] = private.public_key()
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "growth.yaml").write_text(PROJECT)
    # Single quotes: the key's JSON (with its escaped newlines) is taken as it is.
    (tmp_path / ".env").write_text(
        f"OKR_CONNECTIONS__VENDOR__URL={url}\n"
        f"OKR_SECRETS__GA_KEY='{key}'\n"
        f"OKR_SECRETS__AMP_KEY={server.AMPLITUDE_API_KEY}\n"
        f"OKR_SECRETS__AMP_SECRET={server.AMPLITUDE_SECRET_KEY}\n"
        f"OKR_SECRETS__DD_API={server.DD_API_KEY}\n"
        f"OKR_SECRETS__DD_APP={server.DD_APP_KEY}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")

    result = okr("run", "--all", "--as-of", "2024-05-01T12:00:00Z", cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "measured 3 of 3 KRs" in result.stdout, output
    for secret in (*server.ALL_SECRET_VALUES, "PRIVATE KEY", "ya29."):
        assert secret not in output

    status = okr("status", "--json", cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    values = {row["id"]: row["value"] for row in json.loads(status.stdout)}
    # GA4: sessions 4 April to 1 May (4 + ... + 30, then 1); Amplitude: 10 sign-ups a day
    # for 7 days; Datadog: the average of the hourly points over the day before the as-of.
    assert values == {"sessions": "460", "signups": "70", "hits": "11.75"}
    assert live_server.hits["token"] == 1
