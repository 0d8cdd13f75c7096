"""Fixtures of the Plausible, PostHog and Mixpanel tests: their local server, one vcr config.

Cassettes are recorded against the server in ``server.py``::

    OKR_VCR_RECORD_MODE=once pytest tests/connectors/analytics_b

and replayed otherwise (record mode ``none``: a request missing from a cassette fails).
The server's free port is recorded as the placeholder ``http://test-api.invalid`` and live
requests are rewritten the same way before matching, so a cassette replays on any port;
the credentials are filtered out and every test secret value is scrubbed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import vcr
from pydantic import SecretStr

from okr_pipeline.connectors.base import BaseSource, SourceEnvironment
from okr_pipeline.connectors.testing import ConnectorContract
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.connectors.analytics_b import server

CASSETTES = Path(__file__).parent / "cassettes"
RECORD_MODE = os.environ.get("OKR_VCR_RECORD_MODE", "none")
SCRUBBED = "<SCRUBBED>"
PLACEHOLDER_BASE = "http://test-api.invalid"
_LOCAL_BASE = re.compile(r"http://127\.0\.0\.1:\d+")

#: The secrets as the connectors' configs name them.
SECRETS = {
    "plausible_key": server.PLAUSIBLE_KEY,
    "posthog_key": server.POSTHOG_KEY,
    "mixpanel_secret": server.MIXPANEL_SECRET,
}


def scrub(text: str) -> str:
    """Replace every test secret value in ``text``, and local addresses by the placeholder."""
    for value in server.ALL_SECRET_VALUES:
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
    filter_headers=["authorization", "cookie", "set-cookie"],
    before_record_request=_before_record_request,
    before_record_response=_before_record_response,
    decode_compressed_response=True,
)


@pytest.fixture(scope="session")
def analytics_url() -> Iterator[str]:
    """Base URL of the local Plausible/PostHog/Mixpanel stand-in."""
    running = server.start()
    yield server.url_of(running)
    running.shutdown()
    running.server_close()


def environment(url: str) -> SourceEnvironment:
    """The secrets of the three services, and a connection ``analytics`` pointing at ``url``.

    Args:
        url: The server's base URL.

    Returns:
        The environment.
    """
    return SourceEnvironment(
        connections={"analytics": ConnectionSettings(url=SecretStr(url), timeout_seconds=5)},
        secrets={name: SecretStr(value) for name, value in SECRETS.items()},
    )


@pytest.fixture
def analytics_env(analytics_url: str) -> SourceEnvironment:
    """:func:`environment` of the session's server."""
    return environment(analytics_url)


@pytest.fixture
def analytics_cassette(request: pytest.FixtureRequest, analytics_url: str) -> Iterator[Any]:
    """Run the test inside its own cassette, named after its module and the test."""
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{module}-{request.node.name}").strip("_")
    with VCR.use_cassette(f"{name}.yaml") as cassette:
        yield cassette


class AnalyticsContract(ConnectorContract):
    """The contract against the local server: no waits between retries, a wrong secret.

    Subclasses set :attr:`valid`, :attr:`failures` (what each scenario changes in it; the
    ``unauthorized`` one names the secret ``wrong``) and :attr:`wrong_secret` (its value).
    """

    wrong_secret: ClassVar[str]
    valid: ClassVar[Mapping[str, Any]]
    failures: ClassVar[Mapping[str, Mapping[str, Any]]]

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        return self.source_class(env, sleep=lambda seconds: None)  # type: ignore[call-arg]

    def environment(self) -> SourceEnvironment:
        env = environment(self.fixture("analytics_url"))
        wrong = {"wrong": SecretStr(self.wrong_secret)}
        return SourceEnvironment(connections=env.connections, secrets={**env.secrets, **wrong})

    def valid_config(self) -> Mapping[str, Any]:
        return self.valid

    def failing_config(self, scenario: str) -> Mapping[str, Any]:
        return {**self.valid, "retries": 1, **self.failures[scenario]}
