"""A whole-request deadline and a size cap, against a fault-injecting local server.

Live, not replayed: what is tested is how long a fetch takes against a server that
misbehaves at the byte level (trickled body or headers, Content-Length that lies, huge
bodies). The bounds are behavioural: the deadline plus a margin for a loaded machine.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.connectors.http import DEFAULT_MAX_RESPONSE_BYTES, HttpSource, HttpSourceConfig
from okr_pipeline.connectors.http_deadline import (
    DeadlineAdapter,
    DeadlineExceeded,
    ResponseTooLarge,
    request_within,
)
from tests.connectors import http_server

MARGIN = 1.5  # seconds past the deadline a fetch may take on a busy machine
TIMEOUT = 2.0


def config(path: str, **fields: Any) -> HttpSourceConfig:
    fields = {"retries": 0, "timeout_seconds": TIMEOUT, **fields}
    return HttpSourceConfig.model_validate(
        {"type": "http", "connection": "api", "path": path, "value_path": "$.total", **fields}
    )


@pytest.fixture
def source(http_env: SourceEnvironment) -> Any:
    with HttpSource(http_env) as src:
        yield src


def timed(source: HttpSource, cfg: HttpSourceConfig, ctx: SourceContext) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        result: Any = source.fetch(cfg, ctx)
    except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
        result = exc
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    "path",
    [
        # 100 bytes, one every 0.5 s: 50 s in all, each read well inside a 2 s read timeout.
        "/fault/trickle-body?every=0.5&bytes=100",
        # The headers themselves trickle in; requests' timeout never fires.
        "/fault/slow-headers?every=0.5",
        # Declares 1000 bytes, sends 100, then holds the connection open.
        "/fault/length-lie?declared=1000&bytes=100&then=hold&hold=20",
        # No byte at all before the deadline.
        "/slow?seconds=5",
    ],
)
def test_deadline_bounds_the_whole_attempt(source: HttpSource, ctx: SourceContext, path: str):
    error, took = timed(source, config(path), ctx)
    assert isinstance(error, RetriableSourceError), error
    assert f"no complete answer within {TIMEOUT:g}s" in str(error)
    assert "KR growth/signups" in str(error)
    assert took < TIMEOUT + MARGIN
    assert took >= TIMEOUT - 0.1  # it did wait for the deadline, not fail early


def test_deadline_holds_per_attempt_across_retries(source: HttpSource, ctx: SourceContext):
    cfg = config("/fault/trickle-body?every=0.5&bytes=100", retries=1, backoff_seconds=0.1)
    error, took = timed(source, cfg, ctx)
    assert isinstance(error, RetriableSourceError)
    assert f"no complete answer within {TIMEOUT:g}s after 2 attempts" in str(error)
    # Two attempts and one backoff: (retries + 1) * timeout + waits, as documented.
    assert 2 * TIMEOUT <= took < 2 * TIMEOUT + 0.1 + MARGIN


def test_slow_but_complete_answer_within_the_deadline(source: HttpSource, ctx: SourceContext):
    # 12 bytes over ~1.2 s: slower than any single read should take, yet within 2 s.
    value, took = timed(source, config("/fault/trickle-body?every=0.1&bytes=12"), ctx)
    assert value == Decimal(1)
    assert took < TIMEOUT


def test_body_cut_short_is_retriable(source: HttpSource, ctx: SourceContext):
    # Declares 1000 bytes, sends 100 and closes: the answer broke off, no waiting.
    cfg = config("/fault/length-lie?declared=1000&bytes=100&then=close")
    error, took = timed(source, cfg, ctx)
    assert isinstance(error, RetriableSourceError), error
    assert "the answer broke off" in str(error)
    assert took < 1.0


def test_content_length_shorter_than_the_body(source: HttpSource, ctx: SourceContext):
    # Declares 12 bytes of a 100-byte body: only the declared bytes are the answer.
    value, took = timed(source, config("/fault/length-lie?declared=12&bytes=100&then=close"), ctx)
    assert value == Decimal(1)
    assert took < 1.0


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        # Declared: refused from the headers, before the body is read.
        ("/fault/huge?mib=20", "declares 20971543 bytes (Content-Length)"),
        # Not declared: refused once the body grows past the cap.
        ("/fault/huge?mib=20&declare=0", "is larger than 10485760 bytes"),
    ],
)
def test_oversized_answer_is_fatal(
    source: HttpSource, ctx: SourceContext, path: str, fragment: str
):
    error, took = timed(source, config(path), ctx)
    assert isinstance(error, FatalSourceError), error
    message = str(error)
    assert fragment in message
    assert "more than max_response_bytes (10485760)" in message
    assert "raise max_response_bytes on this source" in message
    assert took < TIMEOUT + MARGIN


def test_max_response_bytes_is_configurable(source: HttpSource, ctx: SourceContext):
    cfg = config("/fault/huge?mib=1", max_response_bytes=2 * 1024 * 1024, timeout_seconds=10)
    assert source.fetch(cfg, ctx) == Decimal(1)
    with pytest.raises(FatalSourceError, match=r"max_response_bytes \(1024\)"):
        source.fetch(config("/fault/huge?mib=1", max_response_bytes=1024), ctx)


@pytest.mark.parametrize(
    ("value", "problem"),
    [(0, "greater than or equal to 1024"), (10**12, "less than or equal to 268435456")],
)
def test_max_response_bytes_is_bounded(value: int, problem: str):
    with pytest.raises(ValueError, match=problem):
        config("/number", max_response_bytes=value)
    assert config("/number").max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    schema = HttpSourceConfig.model_json_schema()["properties"]["max_response_bytes"]
    assert schema["maximum"] == 268435456 and "10 MiB" in schema["description"]


def test_other_krs_are_unaffected(source: HttpSource, ctx: SourceContext):
    # One KR's trickling API holds only its own worker, for its own deadline.
    slow = config("/fault/trickle-body?every=0.5&bytes=100")
    fast = config("/number", timeout_seconds=5)
    with ThreadPoolExecutor(max_workers=4) as pool:
        stuck = pool.submit(timed, source, slow, ctx)
        time.sleep(0.2)  # the slow one is mid-answer
        quick = [pool.submit(timed, source, fast, ctx) for _ in range(6)]
        results = [f.result() for f in quick]
        error, took = stuck.result()
    assert [value for value, _ in results] == [Decimal(42)] * 6
    assert max(t for _, t in results) < 1.0
    assert isinstance(error, RetriableSourceError) and took < TIMEOUT + MARGIN


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    # A self-signed certificate for 127.0.0.1 (cryptography comes with Prefect).
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "okr test api")])
    now = datetime(2024, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365 * 100))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def https_url(tls_files: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    server = http_server.start(tls=context)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files[0])  # trust the test certificate
    yield http_server.url_of(server)
    server.shutdown()
    server.server_close()


def test_deadline_holds_over_tls(https_url: str, ctx: SourceContext):
    # The watchdog shuts down the socket under a TLS layer too.
    def cfg(path: str) -> HttpSourceConfig:
        return HttpSourceConfig.model_validate(
            {"type": "http", "url": f"{https_url}{path}", "value_path": "$.total",
             "retries": 0, "timeout_seconds": TIMEOUT}
        )  # fmt: skip

    with HttpSource(SourceEnvironment()) as source:
        assert source.fetch(cfg("/number"), ctx) == Decimal(42)
        for path in ("/fault/trickle-body?every=0.5&bytes=100", "/fault/slow-headers?every=0.5"):
            error, took = timed(source, cfg(path), ctx)
            assert isinstance(error, RetriableSourceError), error
            assert f"no complete answer within {TIMEOUT:g}s" in str(error)
            assert TIMEOUT - 0.1 <= took < TIMEOUT + MARGIN


def test_request_within_without_the_source(http_base_url: str):
    # The building block on its own: a plain session with the adapter mounted.
    session = requests.Session()
    session.mount("http://", DeadlineAdapter())

    def get(path: str, seconds: float = 5, max_bytes: int = 100) -> Any:
        return request_within(
            session,
            "GET",
            f"{http_base_url}{path}",
            params={},
            headers={},
            json_body=None,
            seconds=seconds,
            max_bytes=max_bytes,
            error_bytes=10,
        )

    with session:
        answer = get("/number")
        assert (answer.status, answer.content) == (200, b'{"total": 42}')
        error = get("/status/500", max_bytes=10)
        assert error.status == 500 and len(error.content) == 10  # truncated, not refused
        with pytest.raises(ResponseTooLarge):
            get("/status/200", max_bytes=10)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            get("/fault/slow-headers?every=0.5", seconds=1)
        assert time.monotonic() - started < 1 + MARGIN
    # Every watchdog timer is cancelled when its attempt ends.
    for _ in range(50):
        if not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]:
            break
        time.sleep(0.02)
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
