"""Bad input gets 400, 404 or 422 with a message, never a 500, on pages and API alike."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.browser.served_demo import TOKEN

BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", "/?page=0", None, 422),
        ("GET", "/?page=-1", None, 422),
        ("GET", "/?page=abc", None, 422),
        ("GET", "/?page=99999999999999999999", None, 422),
        ("GET", "/?status=finished", None, 422),
        ("GET", "/?cycle=%00", None, 404),
        ("GET", "/?q=" + "x" * 201, None, 422),
        ("GET", "/?q=%F0%9F%92%A5%27%22%3C", None, 200),
        ("GET", "/?owner=%3Cscript%3E", None, 200),
        ("GET", "/?objective=..%2F..%2Fetc", None, 200),
        ("GET", "/kr/", None, 404),
        ("GET", "/kr/%00", None, 404),
        ("GET", "/kr/a/b/c/d", None, 404),
        ("GET", "/kr/%3Cscript%3E", None, 404),
        ("GET", "/kr/grow-listening/weekly-active-listeners?cycle=nope", None, 404),
        ("GET", "/api/overview?page_size=0", None, 422),
        ("GET", "/api/overview?page_size=100000", None, 422),
        ("GET", "/api/overview?status=%00", None, 422),
        ("GET", "/api/krs/%E2%80%AE", None, 404),
        ("GET", "/api/krs/x/y/history", None, 404),
        ("GET", "/api/runs?limit=0", None, 422),
        ("GET", "/api/alerts?limit=x", None, 422),
        ("GET", "/nowhere", None, 404),
        ("POST", "/api/krs/x/checkins", b"not json", 422),
        ("POST", "/api/krs/x/checkins", b'{"value": []}', 422),
        ("POST", "/api/krs/x/checkins", b'{"value": "1", "as_of": "someday"}', 422),
        ("POST", "/api/krs/x/checkins", b'{"value": "1", "extra": 1}', 422),
        ("POST", "/api/krs/x/notes", b'{"text": ""}', 422),
        ("POST", "/kr/x/checkin", b"\xff\xfe", 400),
        ("POST", "/kr/x/checkin", b"a=" + b"x" * 70000, 413),
    ],
)
def test_no_500(client: TestClient, method: str, url: str, body: bytes | None, status: int):
    headers = dict(BEARER)
    if body is not None:
        headers["content-type"] = (
            "application/json" if url.startswith("/api/") else "application/x-www-form-urlencoded"
        )
    answer = client.request(method, url, content=body, headers=headers)
    assert answer.status_code == status, answer.text[:300]
    assert "Traceback" not in answer.text
    if url.startswith("/api/"):
        assert "detail" in answer.json()


def test_html_never_echoes_markup(client: TestClient):
    page = client.get("/", params={"q": "<script>alert(1)</script>"}).text
    assert "<script>alert(1)</script>" not in page
    page = client.get("/kr/<img src=x onerror=alert(1)>").text
    assert "<img src=x" not in page


def test_the_status_filter_knows_every_status():
    from typing import get_args

    from okr_pipeline.okr_store.models import STATUSES
    from okr_pipeline.web.model import StatusFilter

    assert set(get_args(StatusFilter)) == {*STATUSES, "none"}


def test_an_empty_status_from_the_form_means_any(client: TestClient):
    assert client.get("/?status=&owner=&q=&objective=").status_code == 200
    assert client.get("/api/overview?status=").status_code == 422
