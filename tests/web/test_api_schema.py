"""The JSON API against its own OpenAPI document, on the demo's filled store.

Every ``/api/`` route is fuzzed by schemathesis with valid and invalid input (positive and
negative generation, deterministic): no request may answer 500, and every answer must match
the document (status code, content type, body schema). Real KRs are asked for by name too,
so the answers that carry data are checked, not only the 404s. Writes are made with the
check-in token; without it they are refused and nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.testclient import TestClient

from tests.browser.served_demo import (
    CHART_KR,
    TOKEN,
    FilledDemo,
    filled_demo,
    store_snapshot,
)

#: The API the dashboard promises (issue 9): method, path as in the OpenAPI document.
ROUTES = [
    ("GET", "/api/overview"),
    ("GET", "/api/cycles"),
    ("GET", "/api/krs/{ref}"),
    ("GET", "/api/krs/{ref}/history"),
    ("GET", "/api/runs"),
    ("GET", "/api/alerts"),
    ("GET", "/api/silences"),
    ("POST", "/api/krs/{ref}/checkins"),
    ("POST", "/api/krs/{ref}/notes"),
]
WRITES = {path for method, path in ROUTES if method == "POST"}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
#: Enough to reach every parameter's edge cases; the whole file runs in well under a minute.
EXAMPLES = 30

route_ids = [f"{method} {path}" for method, path in ROUTES]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilledDemo]:
    """The demo project with a cycle of runs in its store and a check-in token."""
    directory = tmp_path_factory.mktemp("api") / "demo"
    with pytest.MonkeyPatch.context() as monkeypatch, filled_demo(directory, monkeypatch) as filled:
        yield filled


@pytest.fixture(scope="module")
def app(demo: FilledDemo) -> Any:
    """The dashboard's ASGI app over the demo, its clock fixed."""
    from okr_pipeline.web.app import create_app

    return create_app(demo.settings, clock=demo.clock)


@pytest.fixture(scope="module")
def api_schema(app: Any) -> schemathesis.BaseSchema:
    """The app's OpenAPI document, loaded by schemathesis (requests go to the app in-process)."""
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    """The OpenAPI document as served."""
    with TestClient(app) as client:
        answer = client.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=route_ids)
def test_every_route_is_in_the_document(document: dict[str, Any], method: str, path: str) -> None:
    assert method.lower() in document["paths"].get(path, {}), f"{method} {path} not documented"


def test_the_document_has_no_api_route_left_untested(document: dict[str, Any]) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    assert documented - set(ROUTES) == set(), "add the new routes to ROUTES"


def test_no_docs_page_loads_from_a_cdn(app: Any) -> None:
    """FastAPI's /docs and /redoc pull their scripts from a CDN: the dashboard has neither."""
    with TestClient(app) as client:
        for path in ("/docs", "/redoc"):
            answer = client.get(path)
            assert answer.status_code == 404 or "cdn.jsdelivr.net" not in answer.text, path


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=route_ids)
def test_generated_requests_never_fail_and_match_the_document(
    api_schema: schemathesis.BaseSchema, demo: FilledDemo, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    strategies = []
    for mode in GenerationMode:
        strategies.append(operation.as_strategy(mode))
        if "{ref}" in path:
            # Real KRs as well, so that the answers with data are generated and checked too.
            for ref in (CHART_KR, demo.manual_ref):
                strategies.append(operation.as_strategy(mode, path_parameters={"ref": ref}))
    # A valid check-in can still be refused for what it says (as-of outside the cycle, a
    # value for a KR that is not manual): for writes, 4xx answers to valid shapes are fine.
    excluded = [positive_data_acceptance] if path in WRITES else []

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=BEARER, excluded_checks=excluded)

    check()


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/overview", {}),
        ("/api/overview", {"owner": "sam@example.com", "status": "on_track", "q": "support"}),
        ("/api/overview", {"page": 2}),
        ("/api/cycles", {}),
        ("/api/krs/{ref}", {"ref": CHART_KR}),
        ("/api/krs/{ref}/history", {"ref": CHART_KR}),
        ("/api/runs", {}),
        ("/api/alerts", {}),
        ("/api/silences", {}),
    ],
    ids=lambda value: str(value) if isinstance(value, str) else None,
)
def test_real_data_answers_200_and_matches_the_document(
    api_schema: schemathesis.BaseSchema, path: str, params: dict[str, Any]
) -> None:
    operation = api_schema[path]["GET"]
    path_parameters = {k: v for k, v in params.items() if k == "ref"}
    query = {k: v for k, v in params.items() if k != "ref"}
    case = operation.Case(path_parameters=path_parameters or None, query=query or None)
    answer = case.call_and_validate()
    assert answer.status_code == 200, answer.text


def test_the_overview_lists_every_kr_with_its_stored_value(app: Any, demo: FilledDemo) -> None:
    with demo.store() as store:
        stored = {row.ref: row for row in store.latest_status()}
    with TestClient(app) as client:
        answer = client.get("/api/overview")
    assert answer.status_code == 200
    body = answer.json()
    shown = {row["ref"]: row for row in body["krs"]}
    assert body["total"] == len(stored)
    assert set(shown) == set(stored)
    for ref, kr in stored.items():
        assert shown[ref]["value"] == (None if kr.value is None else str(kr.value)), ref
        assert shown[ref]["status"] == kr.status, ref


def test_a_checkin_with_the_token_is_stored(
    api_schema: schemathesis.BaseSchema, demo: FilledDemo
) -> None:
    operation = api_schema["/api/krs/{ref}/checkins"]["POST"]
    case = operation.Case(
        path_parameters={"ref": demo.manual_ref},
        body={"value": "4", "note": "four meetups"},
        media_type="application/json",
    )
    answer = case.call_and_validate(headers=BEARER)
    assert 200 <= answer.status_code < 300, answer.text
    with demo.store() as store:
        kr = {row.ref: row for row in store.latest_status()}[demo.manual_ref]
    assert str(kr.value) == "4"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "Basic bm9ib2R5Om5vcGU="}],
    ids=["none", "wrong-token", "unknown-user"],
)
@pytest.mark.parametrize("path", sorted(WRITES))
def test_a_write_without_credentials_is_refused(
    api_schema: schemathesis.BaseSchema, demo: FilledDemo, path: str, headers: dict[str, str]
) -> None:
    before = store_snapshot(demo.store_url)
    operation = api_schema[path]["POST"]
    body = {"value": "5"} if path.endswith("checkins") else {"text": "should not be kept"}
    case = operation.Case(
        path_parameters={"ref": demo.manual_ref}, body=body, media_type="application/json"
    )
    answer = case.call_and_validate(headers=headers)
    assert answer.status_code == 401, answer.text
    assert TOKEN not in answer.text
    assert store_snapshot(demo.store_url) == before
