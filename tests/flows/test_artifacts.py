"""The run's Prefect artifacts, read back through Prefect's client and checked against the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from okr_pipeline.flows.artifacts import DIGEST_KEY, NEEDS_A_LOOK, PROGRESS_KEY, RESULTS_KEY
from okr_pipeline.flows.update import update_key_results
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.okr_store.records import StatusRow
from okr_pipeline.run.record import open_store

pytestmark = pytest.mark.usefixtures("prefect_harness")

REPORT_URL = "https://okr.example.com"
PASSWORD = "hunter2-sekret-pw"


def _run(project: Path, **kwargs: Any) -> UUID:
    state = update_key_results(project_dir=str(project), all_krs=True, return_state=True, **kwargs)
    assert state.is_completed(), state
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def _artifacts(flow_run_id: UUID) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {artifact.key: artifact for artifact in found}
    assert len(by_key) == len(found), [a.key for a in found]  # one of each per run
    return by_key


def _status(project: Path) -> dict[str, StatusRow]:
    store = open_store(load_settings(project))
    try:
        return {row.ref: row for row in store.latest_status()}
    finally:
        store.close()


def _break_response_time(project: Path) -> None:
    okrs = project / "okrs" / "support.yaml"
    okrs.write_text(okrs.read_text().replace("FROM support_tickets", "FROM no_such_table", 1))


def test_the_digest_lists_what_needs_a_look_grouped_by_objective_with_links(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_REPORT_URL", REPORT_URL)
    _break_response_time(demo_project)
    artifacts = _artifacts(_run(demo_project))
    assert set(artifacts) == {RESULTS_KEY, DIGEST_KEY, PROGRESS_KEY}
    digest = artifacts[DIGEST_KEY]
    assert digest.type == "markdown"
    text = str(digest.data)
    assert f"[Open the dashboard]({REPORT_URL})" in text
    rows = _status(demo_project)
    flagged = {ref: row for ref, row in rows.items() if row.status in NEEDS_A_LOOK}
    assert "support-excellence/response-time" in flagged
    sections = _sections(text)
    for ref, row in rows.items():
        objective, kr = ref.split("/")
        link = f"[`{kr}`]({REPORT_URL}/kr/{ref})"
        if ref in flagged:
            (line,) = [ln for ln in sections[objective] if link in ln]
            assert NEEDS_A_LOOK[row.status] in line
            if row.value is not None:
                assert f"value {row.value}" in line
        else:
            assert link not in text, ref  # on track: not listed
    failing = next(ln for ln in sections["support-excellence"] if "response-time" in ln)
    assert "no_such_table" in failing.replace("\\", "")  # the reason says why (unescaped)
    # Objectives in the order of their worst KR: the failing one first.
    assert next(iter(sections)) == "support-excellence"
    assert digest.description == f"{len(flagged)} of {len(rows)} KRs need a look"


def _sections(markdown: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            current = line[3:].replace("\\", "")
            sections[current] = []
        elif current is not None and line.startswith("- "):
            sections[current].append(line)
    return sections


def test_without_report_url_the_digest_has_no_links(demo_project: Path) -> None:
    artifacts = _artifacts(_run(demo_project))
    text = str(artifacts[DIGEST_KEY].data)
    assert "](" not in text and "http" not in text
    assert text.startswith("# OKRs as of ")


def test_the_progress_artifact_ends_at_every_kr_fetched(demo_project: Path) -> None:
    artifacts = _artifacts(_run(demo_project))
    progress = artifacts[PROGRESS_KEY]
    assert progress.type == "progress"
    assert float(str(progress.data)) == 100.0
    total = len(_status(demo_project))
    assert progress.description == f"{total} of {total} KRs fetched"


def test_the_fetch_counts_reach_both_the_artifact_and_the_terminal(demo_project: Path) -> None:
    from okr_pipeline.run.progress import listening

    told: list[tuple[str, int, int | None]] = []
    with listening(lambda phase, done, total: told.append((phase, done, total))):
        artifacts = _artifacts(_run(demo_project))
    assert float(str(artifacts[PROGRESS_KEY].data)) == 100.0
    total = len(_status(demo_project))
    assert (f"fetching {total}/{total} KRs", total, total) in told, told
    assert artifacts[PROGRESS_KEY].description == f"{total} of {total} KRs fetched"


def test_the_table_keeps_its_rows_worst_first(demo_project: Path) -> None:
    _break_response_time(demo_project)
    table = _artifacts(_run(demo_project))[RESULTS_KEY]
    data = table.data if isinstance(table.data, list) else json.loads(str(table.data))
    assert data[0]["id"] == "response-time" and data[0]["status"] == "error"
    assert {f"{r['objective']}/{r['id']}" for r in data} == set(_status(demo_project))


def test_no_secret_reaches_an_artifact(demo_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing source with a password in its URL and a bearer token: neither is shown."""
    settings = load_settings(demo_project)
    token = settings.secrets["analytics_token"].get_secret_value()
    url = settings.connections["analytics"].url.get_secret_value()
    # A URL with credentials, and a path that does not exist: the uptime KR fails.
    monkeypatch.setenv(
        "OKR_CONNECTIONS__ANALYTICS__URL", url.replace("http://", f"http://ops:{PASSWORD}@")
    )
    okrs = demo_project / "okrs" / "support.yaml"
    okrs.write_text(okrs.read_text().replace("/api/v1/query/uptime", "/api/v1/no-such-query"))
    artifacts = _artifacts(_run(demo_project))
    assert _status(demo_project)["support-excellence/uptime"].status == "error"
    for artifact in artifacts.values():
        shown = json.dumps([str(artifact.data), artifact.description])
        assert PASSWORD not in shown, artifact.key
        assert token not in shown, artifact.key
    assert "uptime" in str(artifacts[DIGEST_KEY].data)


def test_the_progress_bar_never_fails_a_run(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from okr_pipeline.flows import artifacts

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Prefect API unreachable")

    monkeypatch.setattr(artifacts, "create_progress_artifact", refuse)
    found = _artifacts(_run(demo_project))
    assert PROGRESS_KEY not in found and DIGEST_KEY in found


def test_a_run_with_nothing_due_says_so(demo_project: Path) -> None:
    update_key_results(project_dir=str(demo_project), all_krs=True)
    state = update_key_results(project_dir=str(demo_project), return_state=True)
    assert state.is_completed() and state.state_details.flow_run_id is not None
    digest = _artifacts(state.state_details.flow_run_id)[DIGEST_KEY]
    text = str(digest.data)
    assert "0 of 8 KRs measured" in text and "Nothing was due." in text


class _ProgressCalls:
    """Stands in for Prefect's progress artifact functions, recording each call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from okr_pipeline.flows import artifacts

        self.calls: list[tuple[Any, ...]] = []
        monkeypatch.setattr(artifacts, "create_progress_artifact", self.create)
        monkeypatch.setattr(artifacts, "update_progress_artifact", self.update)

    def create(self, percent: float, key: str, description: str) -> UUID:
        self.calls.append(("create", percent, key, description))
        return UUID(int=7)

    def update(self, artifact_id: UUID, percent: float, description: str) -> None:
        self.calls.append(("update", artifact_id, percent, description))


def test_a_fetch_shorter_than_a_second_costs_one_api_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from okr_pipeline.flows.artifacts import FetchProgress

    api = _ProgressCalls(monkeypatch)
    bar = FetchProgress()
    bar(0, 40)  # the fetch starts
    assert api.calls == []
    bar(40, 40)  # and ends
    assert api.calls == [("create", 100.0, PROGRESS_KEY, "40 of 40 KRs fetched")]


def test_a_longer_fetch_is_shown_from_its_second_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from okr_pipeline.flows.artifacts import FetchProgress

    api = _ProgressCalls(monkeypatch)
    bar = FetchProgress()
    for done in (0, 12, 30, 40):
        bar(done, 40)
    assert api.calls == [
        ("create", 30.0, PROGRESS_KEY, "12 of 40 KRs fetched"),
        ("update", UUID(int=7), 75.0, "30 of 40 KRs fetched"),
        ("update", UUID(int=7), 100.0, "40 of 40 KRs fetched"),
    ]
