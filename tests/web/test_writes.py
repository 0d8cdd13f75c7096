"""Check-ins and notes on the dashboard: only with the token (or a user) and the CSRF token.

A refused write changes nothing in the store (every table compared before and after); a
bad value is a 400 with the check-in's own one-line message on the page.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from okr_pipeline.okr_core.settings import UiSettings
from okr_pipeline.web.app import create_app
from okr_pipeline.web.auth import CSRF_COOKIE, hash_secret
from tests.browser.served_demo import CHART_KR, TOKEN, FilledDemo, store_snapshot
from tests.web.html_parts import chart_data, flashes, one, select

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def read_only(web_demo: FilledDemo) -> Iterator[TestClient]:
    settings = web_demo.settings.model_copy(update={"ui": UiSettings()})
    with TestClient(create_app(settings, clock=web_demo.clock)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def with_users(web_demo: FilledDemo) -> Iterator[TestClient]:
    ui = UiSettings(users={"alice": SecretStr(hash_secret(PASSWORD))})
    settings = web_demo.settings.model_copy(update={"ui": ui})
    with TestClient(create_app(settings, clock=web_demo.clock)) as test_client:
        yield test_client


def form_of(client: TestClient, ref: str, form_id: str = "checkin") -> dict[str, str]:
    """Open the KR page (setting the CSRF cookie) and return its form's hidden fields."""
    page = client.get(f"/kr/{ref}")
    assert page.status_code == 200
    one(page.text, "form", id=form_id)
    hidden = [e for e in select(page.text, "input", type="hidden") if e.attrs.get("name")]
    return {e.attrs["name"]: e.attrs["value"] for e in hidden}


def history_kinds(client: TestClient, ref: str) -> list[tuple[str, str, str | None, str | None]]:
    rows = client.get(f"/api/krs/{ref}/history").json()
    return [(r["kind"], r["value"], r["author"], r["note"]) for r in rows]


def test_read_only_shows_no_form_and_refuses_writes(read_only: TestClient, web_demo: FilledDemo):
    ref = web_demo.manual_ref
    page = read_only.get(f"/kr/{ref}").text
    assert select(page, "form", id="checkin") == [] and select(page, "form", id="note") == []
    assert CSRF_COOKIE not in read_only.cookies
    before = store_snapshot(web_demo.store_url)
    answer = read_only.post(f"/kr/{ref}/checkin", data={"value": "2", "token": TOKEN})
    assert answer.status_code == 403
    (message,) = flashes(answer.text, "error")
    assert "read-only" in message and "okr ui hash" in message and "OKR_UI__TOKEN_HASH" in message
    answer = read_only.post(
        f"/api/krs/{ref}/checkins",
        json={"value": "2"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 403 and "read-only" in answer.json()["detail"]
    assert read_only.post(f"/kr/{CHART_KR}/note", data={"text": "x"}).status_code == 403
    assert store_snapshot(web_demo.store_url) == before


def test_the_form_carries_a_csrf_token_in_a_strict_cookie(client: TestClient, web_demo: FilledDemo):
    page = client.get(f"/kr/{web_demo.manual_ref}")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=") and "SameSite=strict" in cookie
    assert "HttpOnly" in cookie
    names = {e.attrs.get("name") for e in select(page.text, "input")}
    assert {"value", "note", "as_of", "token", "csrf_token"} <= names
    tokens = {e.attrs["value"] for e in select(page.text, "input", name="csrf_token")}
    assert tokens == {client.cookies[CSRF_COOKIE]}
    # A measured KR takes notes, not values.
    page = client.get(f"/kr/{CHART_KR}").text
    assert select(page, "form", id="checkin") == []
    one(page, "form", id="note")


def test_a_check_in_with_the_token_is_recorded_with_its_author(
    client: TestClient, web_demo: FilledDemo
):
    ref = web_demo.manual_ref
    assert client.get(f"/api/krs/{ref}").json()["row"]["status"] == "no_data"
    fields = form_of(client, ref)
    answer = client.post(
        f"/kr/{ref}/checkin",
        data={**fields, "value": "3", "note": "Berlin and Lisbon", "as_of": "", "token": TOKEN},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get(answer.headers["location"])
    assert flashes(page.text, "ok")
    row = one(page.text, "tr", data_kind="checkin")
    assert row.attrs["data-value"] == "3"
    assert "Berlin and Lisbon" in row.content and "token" in row.content
    assert history_kinds(client, ref)[0] == ("checkin", "3", "token", "Berlin and Lisbon")
    # Scored like a measured value: the status moved from no_data.
    assert one(page.text, "div", id="kr-status").attrs["data-status"] != "no_data"


def test_a_user_checks_in_under_their_name(with_users: TestClient, web_demo: FilledDemo):
    ref = web_demo.manual_ref
    fields = form_of(with_users, ref)
    page = with_users.get(f"/kr/{ref}").text
    assert {"user", "password"} <= {e.attrs.get("name") for e in select(page, "input")}
    answer = with_users.post(
        f"/kr/{ref}/checkin",
        data={**fields, "value": "4", "user": "alice", "password": PASSWORD},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert history_kinds(with_users, ref)[0][:3] == ("checkin", "4", "alice")


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"csrf_token": ""}, 403, "reload the page"),
        ({"csrf_token": "forged.value"}, 403, "reload the page"),
        ({"token": "wrong-token"}, 403, "Wrong token"),
        ({"token": ""}, 403, "Wrong token"),
        ({"value": "abc"}, 400, "abc"),
        ({"value": ""}, 400, "number"),
        ({"as_of": "2001-01-01T00:00Z"}, 400, "2001-01-01"),
        ({"as_of": "yesterday"}, 400, "yesterday"),
    ],
    ids=[
        "no-csrf",
        "forged-csrf",
        "wrong-token",
        "no-token",
        "nan",
        "empty",
        "outside",
        "bad-time",
    ],
)
def test_refused_check_ins_change_nothing(
    client: TestClient, web_demo: FilledDemo, change: dict[str, str], status: int, says: str
):
    ref = web_demo.manual_ref
    fields = form_of(client, ref)
    before = store_snapshot(web_demo.store_url)
    data = {**fields, "value": "5", "note": "", "as_of": "", "token": TOKEN, **change}
    answer = client.post(f"/kr/{ref}/checkin", data=data, follow_redirects=False)
    assert answer.status_code == status, answer.text
    (message,) = flashes(answer.text, "error")
    assert says in message
    assert "Traceback" not in answer.text
    assert store_snapshot(web_demo.store_url) == before


def test_a_value_for_a_measured_or_unknown_kr_is_refused(client: TestClient, web_demo: FilledDemo):
    fields = form_of(client, web_demo.manual_ref)
    before = store_snapshot(web_demo.store_url)
    data = {**fields, "value": "5", "token": TOKEN}
    answer = client.post(f"/kr/{CHART_KR}/checkin", data=data, follow_redirects=False)
    assert answer.status_code == 400
    assert flashes(answer.text, "error")
    answer = client.post("/kr/nowhere/nothing/checkin", data=data, follow_redirects=False)
    assert answer.status_code == 400
    (message,) = flashes(answer.text, "error")
    assert "nowhere/nothing" in message
    assert store_snapshot(web_demo.store_url) == before


def test_a_note_on_a_measured_kr(client: TestClient, web_demo: FilledDemo):
    fields = form_of(client, CHART_KR, "note")
    answer = client.post(
        f"/kr/{CHART_KR}/note",
        data={**fields, "text": "campaign paused this week", "token": TOKEN},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    detail = client.get(f"/api/krs/{CHART_KR}").json()
    assert [(n["author"], n["text"]) for n in detail["notes"]] == [
        ("token", "campaign paused this week")
    ]
    page = client.get(f"/kr/{CHART_KR}").text
    assert "campaign paused this week" in page
    # On the chart too, at its as-of, on the line of the value in force then.
    (note,) = chart_data(page)["notes"]
    assert note["text"] == "campaign paused this week"
    assert note["y"] == chart_data(page)["measured"][-1]["y"]


def test_the_api_takes_a_bearer_token_or_basic_auth(client: TestClient, web_demo: FilledDemo):
    ref = web_demo.manual_ref
    answer = client.post(
        f"/api/krs/{ref}/checkins",
        json={"value": "2.50", "note": "from a bot"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["ref"] == ref and body["author"] == "token" and body["value"] == "2.50"
    assert history_kinds(client, ref)[0] == ("checkin", "2.50", "token", "from a bot")

    before = store_snapshot(web_demo.store_url)
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Digest x"},
    ):
        answer = client.post(f"/api/krs/{ref}/checkins", json={"value": "1"}, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"].startswith("Bearer")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (
        client.post("/api/krs/no/such/checkins", json={"value": "1"}, headers=bearer).status_code
        == 404
    )
    assert (
        client.post(f"/api/krs/{ref}/checkins", json={"value": "x"}, headers=bearer).status_code
        == 400
    )
    assert client.post(f"/api/krs/{ref}/checkins", json={}, headers=bearer).status_code == 422
    assert store_snapshot(web_demo.store_url) == before


def test_basic_auth_names_the_user(with_users: TestClient, web_demo: FilledDemo):
    credentials = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    answer = with_users.post(
        f"/api/krs/{CHART_KR}/notes",
        json={"text": "new tracking plan"},
        headers={"Authorization": f"Basic {credentials}"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"ref": CHART_KR, "author": "alice", "text": "new tracking plan"}
