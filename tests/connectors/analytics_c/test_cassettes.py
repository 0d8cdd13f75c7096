"""The cassettes of this folder hold no credential: no key, JWT, access token or secret."""

from __future__ import annotations

import base64

from tests.connectors.analytics_c import server
from tests.connectors.analytics_c.conftest import cassette_texts


def test_every_vendor_has_cassettes() -> None:
    names = list(cassette_texts())
    for module in ("test_google_analytics", "test_amplitude", "test_datadog"):
        assert any(name.startswith(f"{module}-") for name in names), module


def test_no_credential_in_any_cassette() -> None:
    basic = base64.b64encode(
        f"{server.AMPLITUDE_API_KEY}:{server.AMPLITUDE_SECRET_KEY}".encode()
    ).decode()
    forbidden = {
        *server.ALL_SECRET_VALUES,
        basic,
        "ya29.",  # an access token
        "eyJ",  # the start of a JWT (base64 of '{"')
        "PRIVATE KEY",
        "client_email",
        "127.0.0.1",
    }
    for name, text in cassette_texts().items():
        found = sorted(value for value in forbidden if value in text)
        assert not found, f"{name} holds {found}"
