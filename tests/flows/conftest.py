"""Fixtures for the flow tests: one temporary Prefect server for the session, demo projects."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from okr_pipeline.flows.prefect_env import apply_quiet_defaults

apply_quiet_defaults(console_logs=False)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server and database shared by every flow test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def demo_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A demo project (warehouse, OKR files, .env) with its analytics API running."""
    from okr_pipeline.demo.analytics_api import TOKEN_SECRET, start_in_background
    from okr_pipeline.demo.project import create_demo_project
    from okr_pipeline.okr_core.settings import load_settings

    for name in list(os.environ):
        if (
            name.startswith("OKR_")
            and name not in ("OKR_REQUIRE_DB",)
            and not name.startswith("OKR_TEST_")
        ):
            monkeypatch.delenv(name)
    port = free_port()
    project = create_demo_project(tmp_path / "demo", port=port)
    token = load_settings(project).secrets[TOKEN_SECRET].get_secret_value()
    server: ThreadingHTTPServer = start_in_background(project / "warehouse.db", token, port)
    try:
        yield project
    finally:
        server.shutdown()
        server.server_close()
