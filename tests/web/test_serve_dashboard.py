"""``okr serve`` runs the dashboard beside the schedule, linking runs to the Prefect UI."""

from __future__ import annotations

import io

import httpx
import pytest
from rich.console import Console

from tests.browser.served_demo import FilledDemo


def test_the_dashboard_runs_beside_the_schedule_and_stops_with_it(
    web_demo: FilledDemo, monkeypatch: pytest.MonkeyPatch
):
    from okr_pipeline.flows.serve import _dashboard

    monkeypatch.setenv("OKR_UI__PORT", "0")
    out = io.StringIO()
    console = Console(file=out, width=200)
    with _dashboard(web_demo.project, "http://127.0.0.1:4999/api", console):
        line = out.getvalue()
        assert "Dashboard at http://127.0.0.1:" in line
        url = line.split("Dashboard at ", 1)[1].split("/ ", 1)[0]
        assert httpx.get(f"{url}/healthz", timeout=30).text == "ok"
        assert httpx.get(f"{url}/api/runs", timeout=30).status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=5)
