"""The Plausible, PostHog and Mixpanel cassettes exist, hold no secret and no local address."""

from __future__ import annotations

import base64

from tests.connectors.analytics_b import server
from tests.connectors.analytics_b.conftest import CASSETTES, PLACEHOLDER_BASE


def test_every_connector_has_cassettes() -> None:
    names = {path.name.split("-", 1)[0] for path in CASSETTES.glob("*.yaml")}
    assert names == {"test_plausible", "test_posthog", "test_mixpanel"}, (
        "record with OKR_VCR_RECORD_MODE=once pytest tests/connectors/analytics_b"
    )


def test_cassettes_hold_no_secret_and_no_local_address() -> None:
    basic = base64.b64encode(f"{server.MIXPANEL_ACCOUNT}:{server.MIXPANEL_SECRET}".encode())
    for path in sorted(CASSETTES.glob("*.yaml")):
        text = path.read_text()
        for secret in (*server.ALL_SECRET_VALUES, basic.decode()):
            assert secret not in text, f"secret {secret[:6]}... recorded in {path.name}"
        assert "Bearer " not in text and "Basic " not in text, path.name
        assert "127.0.0.1" not in text and f"uri: {PLACEHOLDER_BASE}/" in text, path.name
