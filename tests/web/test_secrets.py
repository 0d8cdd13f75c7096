"""No secret reaches any page or API answer: connection passwords, API tokens, write tokens."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import SecretStr

from okr_pipeline.demo.analytics_api import TOKEN_SECRET
from okr_pipeline.okr_core.settings import ConnectionSettings
from okr_pipeline.web.app import create_app
from tests.browser.served_demo import TOKEN, FilledDemo

PASSWORD = "Pw-9f3Kq-never-shown"


def every_page(client: TestClient, refs: list[str]) -> dict[str, str]:
    urls = ["/", "/runs", "/alerts", "/openapi.json", "/api/overview", "/api/cycles"]
    urls += ["/api/runs", "/api/alerts", "/api/silences", "/?q=warehouse", "/?status=no_data"]
    for ref in refs:
        urls += [f"/kr/{ref}", f"/api/krs/{ref}", f"/api/krs/{ref}/history"]
    pages = {}
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200, url
        pages[url] = answer.text
    return pages


def test_no_page_shows_a_secret(web_demo: FilledDemo):
    settings = web_demo.settings
    analytics = settings.connections["analytics"].url.get_secret_value()
    warehouse = settings.connections["warehouse"].url.get_secret_value()
    connections = {
        # A password in a URL, and one in its query string, as people write them.
        "analytics": ConnectionSettings(
            url=SecretStr(analytics.replace("http://", f"http://bot:{PASSWORD}@"))
        ),
        "warehouse": ConnectionSettings(url=SecretStr(f"{warehouse}?password={PASSWORD}")),
    }
    settings = settings.model_copy(update={"connections": connections})
    api_token = settings.secrets[TOKEN_SECRET].get_secret_value()
    assert settings.ui.token_hash is not None
    token_hash = settings.ui.token_hash.get_secret_value()
    with TestClient(create_app(settings, clock=web_demo.clock)) as client:
        refs = [row["ref"] for row in client.get("/api/overview").json()["krs"]]
        pages = every_page(client, refs)
        # The masked connection is shown, so the test would see a leak if there was one.
        assert "bot:***@" in pages["/kr/podcast-discovery/recommendation-ctr"]
        # A token typed into the form is not sent back either.
        refused = client.post(f"/kr/{refs[0]}/checkin", data={"value": "1", "token": PASSWORD})
        pages["refused"] = refused.text
    for url, text in pages.items():
        for secret in (PASSWORD, api_token, TOKEN, token_hash):
            assert secret not in text, f"a secret in {url}"
