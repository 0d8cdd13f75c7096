"""Fixtures of the Prometheus tests: a real server scraping itself, a proxy, one vcr config.

The server is Debian's ``prometheus`` binary started by ``server.start`` on a free port.
Without the binary these tests skip, unless ``OKR_REQUIRE_DB=1`` (CI), where they fail.

Cassettes are recorded from that real server (and the proxy in front of it) with::

    OKR_VCR_RECORD_MODE=once pytest tests/connectors/prometheus

and replayed without any server (record mode ``none``). Only queries whose answers do not
depend on the server's own data are recorded (``vector(42)``, ``time()`` at a fixed as-of,
series that did not exist in 2024), so a re-recording gives the same numbers. Local
addresses are recorded as the placeholder host, so a cassette replays on any port.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import vcr
from pydantic import SecretStr

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.conftest import REQUIRE_DB
from tests.connectors.conftest import RECORD_MODE, SCRUBBED, scrub
from tests.connectors.prometheus import proxy, server
from tests.ports import free_port

CASSETTES = Path(__file__).parent / "cassettes"
#: The fixed as-of of every test that does not read the server's own samples.
AS_OF = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def context(as_of: datetime = AS_OF) -> SourceContext:
    """An evaluation context at ``as_of`` (a 90-day cycle around it), KR ``ops/uptime``."""
    return SourceContext(
        as_of=as_of,
        cycle_start=as_of - timedelta(days=30),
        cycle_end=as_of + timedelta(days=60),
        kr_ref="ops/uptime",
    )


def moment(unix: Decimal) -> datetime:
    """The UTC datetime of unix seconds, exact to the microsecond (no float rounding)."""
    whole = int(unix)
    micros = int((unix - whole) * 1_000_000)
    return datetime.fromtimestamp(whole, UTC) + timedelta(microseconds=micros)


def environment(prometheus_url: str, proxy_url: str) -> SourceEnvironment:
    """Connections to the server (``prom``) and through the proxy; the proxy's secrets."""

    def connection(url: str) -> ConnectionSettings:
        return ConnectionSettings(url=SecretStr(url), timeout_seconds=5)

    return SourceEnvironment(
        connections={
            "prom": connection(prometheus_url),
            "bearer": connection(f"{proxy_url}/bearer"),
            "basic": connection(f"{proxy_url}/basic"),
            "slow": connection(f"{proxy_url}/slow"),
            "limited": connection(f"{proxy_url}/status/429"),
            "broken": connection(f"{proxy_url}/status/503"),
            "other": connection(f"{proxy_url}/not-prometheus"),
        },
        secrets={
            "prom_token": SecretStr(proxy.TOKEN),
            "prom_password": SecretStr(proxy.PASSWORD),
            "wrong_token": SecretStr("wrongtok-0d9c7e21-SECRET"),
        },
    )


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.Prometheus]:
    """A real Prometheus with samples of itself (one per xdist worker)."""
    try:
        running = server.start(tmp_path_factory.mktemp("prometheus"))
    except server.PrometheusUnavailable as exc:
        if REQUIRE_DB:
            pytest.fail(f"Prometheus tests cannot run: {exc}")
        pytest.skip(str(exc))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def prom_proxy(prometheus: server.Prometheus) -> Iterator[str]:
    """The proxy's base URL, in front of :func:`prometheus`."""
    running: ThreadingHTTPServer = proxy.start(prometheus.url)
    yield proxy.url_of(running)
    running.shutdown()
    running.server_close()


@pytest.fixture
def prom_env(prometheus: server.Prometheus, prom_proxy: str) -> SourceEnvironment:
    """The environment of the live tests."""
    return environment(prometheus.url, prom_proxy)


@pytest.fixture
def live_ctx(prometheus: server.Prometheus) -> SourceContext:
    """As of one second after the server's first sample of itself: its series exist."""
    return context(moment(prometheus.first_sample) + timedelta(seconds=1))


def _scrub(text: str) -> str:
    for value in proxy.ALL_SECRET_VALUES:
        text = text.replace(value, SCRUBBED)
    return scrub(text)


def _before_record_request(request: Any) -> Any:
    request.uri = _scrub(request.uri)
    return request


def _before_record_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response["body"]["string"]
    if isinstance(body, bytes):
        response["body"]["string"] = _scrub(body.decode("utf-8", "replace")).encode()
    return response


VCR = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode=RECORD_MODE,
    match_on=["method", "scheme", "host", "port", "path", "query"],
    filter_headers=["authorization", "cookie", "set-cookie"],
    before_record_request=_before_record_request,
    before_record_response=_before_record_response,
    decode_compressed_response=True,
)


@pytest.fixture
def cassette_env(request: pytest.FixtureRequest) -> Iterator[SourceEnvironment]:
    """Inside the test's own cassette: the real server when recording, nothing otherwise.

    Replaying needs no server: the connections point at a free port nobody listens on,
    which the vcr config rewrites to the placeholder host the cassettes hold.
    """
    if RECORD_MODE == "none":
        base = f"http://127.0.0.1:{free_port()}"
        env = environment(base, base)
    else:
        env = request.getfixturevalue("prom_env")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    with VCR.use_cassette(f"{name}.yaml"):
        yield env
