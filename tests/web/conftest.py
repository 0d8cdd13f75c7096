"""Fixtures of the dashboard's tests: the demo's store filled by real runs, the app on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.browser.served_demo import FilledDemo, filled_demo


@pytest.fixture(scope="module")
def web_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilledDemo]:
    """The demo project, a cycle of weekly runs in its store, a manual KR, a check-in token."""
    directory = tmp_path_factory.mktemp("web") / "demo"
    with pytest.MonkeyPatch.context() as monkeypatch, filled_demo(directory, monkeypatch) as demo:
        yield demo


@pytest.fixture(scope="module")
def client(web_demo: FilledDemo) -> Iterator[TestClient]:
    """The dashboard over the demo, its clock fixed a minute after the last run."""
    from okr_pipeline.web.app import create_app

    with TestClient(create_app(web_demo.settings, clock=web_demo.clock)) as test_client:
        yield test_client
