"""A run with ``report_url`` set sends alerts that link each KR to its dashboard page."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from okr_pipeline.demo.analytics_api import INBOX
from okr_pipeline.run.update import RunRequest, run_update

DASHBOARD = "https://okr.example.com/okrs"


def test_alerts_sent_by_a_run_link_to_the_dashboard(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_REPORT_URL", DASHBOARD)
    # Alerts fire after two evaluations in a row: three runs, a second apart.
    now = datetime.now(UTC).replace(microsecond=0)
    for ago in (2, 1, 0):
        run_update(
            RunRequest(project_dir=demo_project, all_krs=True, as_of=now - timedelta(seconds=ago))
        )
    lines = (demo_project / INBOX).read_text(encoding="utf-8").splitlines()
    assert lines, "the demo should send alerts"
    told = 0
    for line in lines:
        body = json.loads(line)["message"]
        refs = re.findall(r"^### .*?: `([^`]+)`", body, re.MULTILINE)
        assert refs, body
        for ref in refs:
            assert f"[open in the dashboard]({DASHBOARD}/kr/{ref})" in body
            told += 1
        assert body.rstrip().endswith(f"[Open the OKR dashboard]({DASHBOARD})")
    assert told >= 1
