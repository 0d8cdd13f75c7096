"""Fixtures of the tracker and CSV connector tests: the local server, a vcr, the context.

Cassettes are recorded from ``servers.py`` (``OKR_VCR_RECORD_MODE=once``) and replayed
otherwise; its address is recorded as ``http://test-api.invalid`` and the test secrets as
``<SCRUBBED>``, so they replay on any port and hold no credential.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import vcr
from pydantic import SecretStr

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.connectors.trackers import servers

PLACEHOLDER_BASE = "http://test-api.invalid"
_LOCAL = re.compile(r"http://127\.0\.0\.1:\d+")


def scrub(text: str) -> str:
    """Test secrets replaced by ``<SCRUBBED>``, the local address by the placeholder."""
    for value in servers.ALL_SECRET_VALUES:
        text = text.replace(value, "<SCRUBBED>")
    return _LOCAL.sub(PLACEHOLDER_BASE, text)


def _request(request: Any) -> Any:
    if request.body:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        request.body = scrub(body).encode()
    request.uri = scrub(request.uri)
    return request


def _response(response: dict[str, Any]) -> dict[str, Any]:
    body = response["body"]["string"]
    if isinstance(body, bytes):
        response["body"]["string"] = scrub(body.decode("utf-8", "replace")).encode()
    return response


VCR = vcr.VCR(
    cassette_library_dir=str(Path(__file__).parent / "cassettes"),
    record_mode=os.environ.get("OKR_VCR_RECORD_MODE", "none"),
    match_on=["method", "scheme", "host", "port", "path", "query", "body"],
    filter_headers=["authorization"],
    filter_query_parameters=["key"],
    before_record_request=_request,
    before_record_response=_response,
    decode_compressed_response=True,
)


@pytest.fixture(scope="session")
def tracker_url() -> Iterator[str]:
    """Base URL of the local Jira/GitHub/CSV server."""
    server = servers.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def cassette(request: pytest.FixtureRequest, tracker_url: str) -> Iterator[Any]:
    """The test inside its own cassette, named after it."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    with VCR.use_cassette(f"{name}.yaml") as cassette:
        yield cassette


@pytest.fixture
def ctx() -> SourceContext:
    """2024 Q2, as of 1 May 2024 12:00 UTC."""
    return SourceContext(
        as_of=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
        cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
        kr_ref="delivery/kr",
    )


def environment(url: str) -> SourceEnvironment:
    """The server as connection ``site``; the test secrets by name.

    Args:
        url: The server's base URL (or the cassettes' placeholder).

    Returns:
        The environment.
    """
    return SourceEnvironment(
        connections={"site": ConnectionSettings(url=SecretStr(url), timeout_seconds=5)},
        secrets={
            "jira_token": SecretStr(servers.JIRA_TOKEN),
            "jira_pat": SecretStr(servers.JIRA_PAT),
            "gh_token": SecretStr(servers.GITHUB_TOKEN),
            "csv_key": SecretStr(servers.CSV_KEY),
        },
    )


@pytest.fixture
def live_env(tracker_url: str) -> SourceEnvironment:
    """The environment pointing at the running server (cassettes rewrite its address)."""
    return environment(tracker_url)
