"""With ``report_dir`` set, each run writes the HTML report there; a failure never fails the run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from okr_pipeline.flows.update import update_key_results
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.run.record import open_store

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _refs(project: Path) -> set[str]:
    store = open_store(load_settings(project))
    try:
        return {row.ref for row in store.latest_status()}
    finally:
        store.close()


def test_a_run_writes_the_report_into_report_dir(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_REPORT_DIR", "reports")  # relative to the project folder
    update_key_results(project_dir=str(demo_project), all_krs=True)
    (report,) = (demo_project / "reports").iterdir()
    assert report.name.startswith("okr-report-2026-Q4-") and report.suffix == ".html"
    html = report.read_text(encoding="utf-8")
    for ref in _refs(demo_project):
        assert f'data-kr="{ref}"' in html, ref
    # The next run replaces the day's report: one file per cycle and day.
    update_key_results(project_dir=str(demo_project), kr=["uptime"])
    assert [p.name for p in (demo_project / "reports").iterdir()] == [report.name]


def test_no_report_dir_no_report_and_a_dry_run_writes_none(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    update_key_results(project_dir=str(demo_project), all_krs=True)
    assert not list(demo_project.glob("**/okr-report-*"))
    monkeypatch.setenv("OKR_REPORT_DIR", "reports")
    update_key_results(project_dir=str(demo_project), all_krs=True, dry_run=True)
    assert not (demo_project / "reports").exists()


def test_a_report_that_cannot_be_written_is_logged_and_the_run_succeeds(
    demo_project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (demo_project / "reports").write_text("a file where the folder should be")
    monkeypatch.setenv("OKR_REPORT_DIR", "reports")
    with caplog.at_level(logging.WARNING):
        state = update_key_results(project_dir=str(demo_project), all_krs=True, return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    assert summary.measured == len(_refs(demo_project)) and summary.run_id is not None
    warnings = [
        r.getMessage() for r in caplog.records if "report could not be written" in r.getMessage()
    ]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
