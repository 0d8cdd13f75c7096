"""Fixtures of the GA4, Amplitude and Datadog tests: their local server, keys, one vcr config.

Cassettes are recorded against the server in ``server.py``::

    OKR_VCR_RECORD_MODE=once pytest tests/connectors/analytics_c

and replayed otherwise (record mode ``none``: a request missing from a cassette fails).
The server's free port is recorded as the placeholder ``http://test-api.invalid`` and live
requests are rewritten the same way before matching, so a cassette replays on any port.
Credentials are filtered out, every test secret value is scrubbed, and so are the signed
JWT of the Google sign-in and the access tokens the server issues (the JWT changes with
the throwaway key generated per session; scrubbed, it matches on replay).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import vcr
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.connectors.analytics_c import server

CASSETTES = Path(__file__).parent / "cassettes"
RECORD_MODE = os.environ.get("OKR_VCR_RECORD_MODE", "none")
SCRUBBED = "<SCRUBBED>"
PLACEHOLDER_BASE = "http://test-api.invalid"
_LOCAL_BASE = re.compile(r"http://127\.0\.0\.1:\d+")
_ASSERTION = re.compile(r"assertion=[A-Za-z0-9_.%-]+")

#: The as-of of the fixed-clock tests, and the "now" of their server and sign-in.
AS_OF = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW = AS_OF.timestamp()


def fixed_clock() -> float:
    """The tests' "now": the as-of."""
    return NOW


def make_key(token_uri: str) -> tuple[str, rsa.RSAPrivateKey]:
    """A throwaway service-account key file pointing at ``token_uri``, and its RSA key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key = {
        "type": "service_account",
        "project_id": "okr-test",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": server.SERVICE_ACCOUNT,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    return json.dumps(key), private


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Replace secrets, JWTs and access tokens in ``text``, and local addresses."""
    for value in (*server.ALL_SECRET_VALUES, *secrets):
        text = text.replace(value, SCRUBBED)
    text = _ASSERTION.sub(f"assertion={SCRUBBED}", text)
    text = server.ACCESS_TOKEN.sub(SCRUBBED, text)
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
    filter_headers=["authorization", "dd-api-key", "dd-application-key", "cookie"],
    before_record_request=_before_record_request,
    before_record_response=_before_record_response,
    decode_compressed_response=True,
)


@pytest.fixture(scope="session")
def vendor_server() -> Iterator[Any]:
    """The local vendor server, its "now" fixed at the as-of."""
    running = server.start(fixed_clock)
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(scope="session")
def vendor_url(vendor_server: Any) -> str:
    """Base URL of the local vendor server."""
    return server.url_of(vendor_server)


@pytest.fixture(scope="session")
def ga_key(vendor_server: Any, vendor_url: str) -> str:
    """A service-account key file whose public key the server knows (as Google would)."""
    text, private = make_key(f"{vendor_url}/token")
    vendor_server.public_keys[server.SERVICE_ACCOUNT] = private.public_key()
    return text


@pytest.fixture
def env(vendor_url: str, ga_key: str) -> SourceEnvironment:
    """A connection to the local server and the secrets of all three vendors."""
    return SourceEnvironment(
        connections={"local": ConnectionSettings(url=SecretStr(vendor_url), timeout_seconds=5)},
        secrets={
            "ga_key": SecretStr(ga_key),
            "amp_key": SecretStr(server.AMPLITUDE_API_KEY),
            "amp_secret": SecretStr(server.AMPLITUDE_SECRET_KEY),
            "dd_api": SecretStr(server.DD_API_KEY),
            "dd_app": SecretStr(server.DD_APP_KEY),
        },
    )


@pytest.fixture
def ctx() -> SourceContext:
    """2024 Q2, as of 1 May 2024 at noon."""
    return SourceContext(
        as_of=AS_OF,
        cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
        cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
        kr_ref="growth/kr",
    )


@pytest.fixture
def cassette(request: pytest.FixtureRequest, vendor_url: str) -> Iterator[Any]:
    """Run the test inside its own cassette, named after the module and the test."""
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{module}-{request.node.name}").strip("_")
    with VCR.use_cassette(f"{name}.yaml") as cassette:
        yield cassette


def cassette_texts() -> dict[str, str]:
    """Every cassette of this folder, by file name."""
    return {path.name: path.read_text() for path in sorted(CASSETTES.glob("*.yaml"))}
