"""The recorded cassettes exist and hold no secret value."""

from __future__ import annotations

from tests.connectors import http_server
from tests.connectors.conftest import CASSETTES


def test_cassettes_hold_no_secret():
    files = sorted(CASSETTES.glob("*.yaml"))
    assert files, "no cassettes recorded: run OKR_VCR_RECORD_MODE=once pytest tests/connectors"
    for path in files:
        text = path.read_text()
        for secret in http_server.ALL_SECRET_VALUES:
            assert secret not in text, f"secret {secret[:6]}... recorded in {path.name}"
        assert "Bearer tok-" not in text and "Basic " not in text
