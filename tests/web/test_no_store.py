"""Pointed at a folder with no store, the dashboard says how to make one and creates nothing."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.web.app import create_app
from tests.web.html_parts import flashes


def test_no_store_yet(tmp_path: Path):
    with TestClient(create_app(Settings(project_dir=tmp_path))) as client:
        page = client.get("/")
        assert page.status_code == 503
        (message,) = flashes(page.text, "error")
        assert message.startswith("No store yet at ") and "okr run" in message
        answer = client.get("/api/overview")
        assert answer.status_code == 503 and "No store yet" in answer.json()["detail"]
        assert client.get("/healthz").text == "ok"
    assert list(tmp_path.iterdir()) == []  # no .okr/okr.db left behind


def test_a_store_url_password_is_masked_in_the_message(tmp_path: Path):
    url = "postgresql+psycopg://okr:Pw-no-show@127.0.0.1:1/none"
    with TestClient(create_app(Settings(project_dir=tmp_path, store_url=url))) as client:
        answer = client.get("/api/overview")
    assert answer.status_code == 503
    assert "Pw-no-show" not in answer.text and "okr:***@" in answer.text
