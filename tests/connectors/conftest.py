"""Fixtures of the connector tests: evaluation context, local HTTP server, one vcr config.

Cassettes are recorded against the real server in ``http_server.py``::

    OKR_VCR_RECORD_MODE=once pytest tests/connectors

and replayed in CI (record mode ``none``: a request missing from a cassette fails).

The server listens on a free port, so the address of any local server is recorded as the
placeholder ``http://test-api.invalid``; requests are rewritten the same way before they are
matched, which makes replay independent of the port (vcrpy applies ``before_record_request``
to recorded and live requests alike).
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
from tests.connectors import http_server

CASSETTES = Path(__file__).parent / "cassettes"
RECORD_MODE = os.environ.get("OKR_VCR_RECORD_MODE", "none")
SCRUBBED = "<SCRUBBED>"
PLACEHOLDER_BASE = "http://test-api.invalid"
_LOCAL_BASE = re.compile(r"http://127\.0\.0\.1:\d+")


def scrub(text: str) -> str:
    """Replace every test secret value in ``text``, and local addresses by the placeholder."""
    for value in http_server.ALL_SECRET_VALUES:
        text = text.replace(value, SCRUBBED)
    return _LOCAL_BASE.sub(PLACEHOLDER_BASE, text)


def _before_record_request(request: Any) -> Any:
    if request.body:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        request.body = scrub(body).encode()
    request.uri = scrub(request.uri)
    for name in list(request.headers):
        request.headers[name] = scrub(str(request.headers[name]))
    return request


def _before_record_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response["body"]["string"]
    if isinstance(body, bytes):
        response["body"]["string"] = scrub(body.decode("utf-8", "replace")).encode()
    response["headers"] = {
        name: [scrub(v) for v in values] for name, values in response["headers"].items()
    }
    return response


VCR = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode=RECORD_MODE,
    match_on=["method", "scheme", "host", "port", "path", "query", "body"],
    filter_headers=["authorization", "x-api-key", "cookie", "set-cookie"],
    filter_query_parameters=["token", "key", "api_key", "access_token"],
    before_record_request=_before_record_request,
    before_record_response=_before_record_response,
    decode_compressed_response=True,
)


@pytest.fixture(scope="session")
def http_base_url() -> Iterator[str]:
    """Base URL of the local test API (started for recording and for live tests)."""
    server = http_server.start()
    http_server.BASE_URL = http_server.url_of(server)  # for tests that read the module
    yield http_server.BASE_URL
    server.shutdown()
    server.server_close()


@pytest.fixture
def cassette(request: pytest.FixtureRequest, http_base_url: str) -> Iterator[Any]:
    """Run the test inside its own cassette, named after the test."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    with VCR.use_cassette(f"{name}.yaml") as cassette:
        yield cassette


@pytest.fixture
def ctx() -> SourceContext:
    """A fixed evaluation context: 2024 Q2, as of 1 May 2024."""
    return SourceContext(
        as_of=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
        cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
        kr_ref="growth/signups",
    )


@pytest.fixture
def http_env(http_base_url: str) -> SourceEnvironment:
    """Secrets of the test API plus a connection pointing at it."""
    return SourceEnvironment(
        connections={
            "api": ConnectionSettings(
                url=SecretStr(http_base_url),
                timeout_seconds=5,
                headers={"X-Tenant": SecretStr(http_server.TENANT_HEADER_VALUE)},
            )
        },
        secrets={name: SecretStr(value) for name, value in http_server.SECRETS.items()},
    )
