"""The recorded cassettes exist, hold no secret value, and replay on any port."""

from __future__ import annotations

from decimal import Decimal

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.http import HttpSource, HttpSourceConfig
from tests.connectors import http_server
from tests.connectors.conftest import CASSETTES, PLACEHOLDER_BASE, VCR


def test_cassettes_hold_no_secret():
    files = sorted(CASSETTES.glob("*.yaml"))
    assert files, "no cassettes recorded: run OKR_VCR_RECORD_MODE=once pytest tests/connectors"
    for path in files:
        text = path.read_text()
        for secret in http_server.ALL_SECRET_VALUES:
            assert secret not in text, f"secret {secret[:6]}... recorded in {path.name}"
        assert "Bearer tok-" not in text and "Basic " not in text


def test_cassettes_hold_no_local_address():
    # Recorded from a server on a free port: the address is the placeholder, so a replay
    # does not depend on the port the test server gets.
    for path in sorted(CASSETTES.glob("*.yaml")):
        text = path.read_text()
        assert "127.0.0.1" not in text and "localhost" not in text, path.name
        assert f"uri: {PLACEHOLDER_BASE}/" in text, path.name


def test_test_servers_take_free_ports():
    # Two runs (or xdist workers) on one machine each get their own port.
    first, second = http_server.start(), http_server.start()
    try:
        assert http_server.url_of(first) != http_server.url_of(second)
    finally:
        for server in (first, second):
            server.shutdown()
            server.server_close()


def test_replay_ignores_the_port(ctx: SourceContext):
    # A port nothing listens on any more: only the cassette can answer.
    server = http_server.start()
    base = http_server.url_of(server)
    server.shutdown()
    server.server_close()
    env = SourceEnvironment(secrets={})
    cfg = HttpSourceConfig(type="http", url=f"{base}/number", value_path="$.total", retries=0)
    with VCR.use_cassette("test_absolute_url.yaml", record_mode="none") as cassette:
        with HttpSource(env) as source:
            assert source.fetch(cfg, ctx) == Decimal(42)
        assert cassette.play_count == 1
