"""Formula KRs in a run (run/formulas.py): computed after the others, in dependency order.

Driven through ``run_update`` without Prefect, on a SQLite warehouse, at fixed as-ofs.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from okr_pipeline.okr_core.errors import DefinitionError
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.definitions import load_definitions
from okr_pipeline.run.update import RunRequest, run_update

DAY1 = datetime(2026, 10, 5, 12, tzinfo=UTC)
DAY2 = datetime(2026, 10, 12, 12, tzinfo=UTC)


def sql(name: str) -> str:
    # Each KR reads the latest count of its name as of the as-of (backfills work); NULL,
    # i.e. no data, when there is none.
    return (
        "{type: sql, connection: warehouse, query: \"SELECT (SELECT n FROM counts WHERE name = '"
        + name
        + "' AND day <= date(:as_of) ORDER BY day DESC LIMIT 1)\"}"
    )


OKRS = f"""\
cycle: {{name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}}
objectives:
  - id: growth
    title: Grow
    owner: o@example.com
    key_results:
      - id: doubled
        title: Twice the activation rate (a formula of a formula, listed first)
        baseline: 0
        target: 100
        source: {{type: formula, expression: "[growth/rate] * 2"}}
      - id: rate
        title: Activation rate from 10% to 40%
        unit: "%"
        baseline: 10
        target: 40
        source: {{type: formula, expression: "activated / signed_up * 100"}}
      - id: signed_up
        title: Signups from 100 to 200
        baseline: 100
        target: 200
        source: {sql("signed_up")}
      - id: activated
        title: Activations from 10 to 80
        baseline: 10
        target: 80
        source: {sql("activated")}
  - id: quality
    title: Quality
    owner: q@example.com
    key_results:
      - id: empty
        title: A count with no rows yet
        baseline: 0
        target: 10
        source: {sql("nothing")}
      - id: broken
        title: A query that fails
        baseline: 0
        target: 10
        source: {{type: sql, connection: warehouse, query: "SELECT n FROM no_such_table"}}
      - id: of_empty
        title: Depends on a KR with no data
        baseline: 0
        target: 10
        source: {{type: formula, expression: "empty + 1"}}
      - id: of_broken
        title: Depends on a KR whose fetch failed
        baseline: 0
        target: 10
        source: {{type: formula, expression: "max(broken, 1)"}}
      - id: zero
        title: Divides by zero
        baseline: 0
        target: 10
        source: {{type: formula, expression: "activated / (signed_up - [growth/signed_up])"}}
      - id: constant
        title: A formula without references
        baseline: 0
        target: 10
        source: {{type: formula, expression: "-(1.5 - 4) * 2 / 8"}}
"""

COUNTS = [
    ("2026-10-04", "signed_up", 120),
    ("2026-10-04", "activated", 30),
    ("2026-10-11", "signed_up", 150),
    ("2026-10-11", "activated", 45),
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("OKR_") and not name.startswith("OKR_TEST_"):
            monkeypatch.delenv(name)
    return write_project(tmp_path, OKRS, COUNTS)


def write_project(folder: Path, okrs: str, counts: list[tuple[str, str, int]]) -> Path:
    """A project: okrs/q4.yaml, and a SQLite warehouse of ``(day, name, n)`` counts."""
    (folder / "okrs").mkdir()
    (folder / "okrs" / "q4.yaml").write_text(okrs)
    with sqlite3.connect(folder / "wh.db") as db:
        db.execute("CREATE TABLE counts (day TEXT, name TEXT, n INTEGER)")
        db.executemany("INSERT INTO counts VALUES (?, ?, ?)", counts)
    (folder / ".env").write_text(f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{folder}/wh.db\n")
    return folder


def rows(summary: Any) -> dict[str, dict[str, Any]]:
    return {f"{r['objective']}/{r['id']}": r for r in summary.rows}


def test_formulas_are_computed_after_the_values_they_reference(project: Path) -> None:
    summary = run_update(RunRequest(project_dir=project, all_krs=True, as_of=DAY1))
    got = rows(summary)
    assert got["growth/rate"]["value"] == "25"  # 30 / 120 * 100, exactly
    assert got["growth/doubled"]["value"] == "50"  # computed after rate, though listed first
    assert got["quality/constant"]["value"] == "0.625"
    # The rate's score uses it like any measured value: (25 - 10) / (40 - 10).
    assert got["growth/rate"]["progress"] == 0.5


def test_missing_values_propagate_as_no_data_never_zero(project: Path) -> None:
    summary = run_update(RunRequest(project_dir=project, all_krs=True, as_of=DAY1))
    got = rows(summary)
    assert got["quality/empty"]["status"] == "no_data"
    assert got["quality/broken"]["status"] == "error"
    for ref in ("quality/of_empty", "quality/of_broken"):
        assert got[ref]["status"] == "no_data", got[ref]
        assert got[ref]["value"] is None


def test_division_by_zero_is_the_kr_error_naming_the_divisor(project: Path) -> None:
    summary = run_update(RunRequest(project_dir=project, all_krs=True, as_of=DAY1))
    assert rows(summary)["quality/zero"]["status"] == "error"
    (message,) = [text for ref, text in summary.failed if ref == "quality/zero"]
    assert "division by zero: the divisor is 0" in message
    assert "quality/zero" in message


def test_a_kr_not_measured_in_the_run_gives_its_stored_value(project: Path) -> None:
    run_update(RunRequest(project_dir=project, all_krs=True, as_of=DAY1))
    # A week later only the formulas are measured: the counts come from the store (DAY1's,
    # the latest good values as of DAY2), not from the warehouse's newer rows.
    summary = run_update(RunRequest(project_dir=project, kr=["growth/rate", "doubled"], as_of=DAY2))
    got = rows(summary)
    assert got["growth/rate"]["value"] == "25"
    assert got["growth/doubled"]["value"] == "50"
    assert summary.measured == 2


def test_a_stored_value_from_after_the_as_of_is_not_used(project: Path) -> None:
    run_update(RunRequest(project_dir=project, all_krs=True, as_of=DAY2))
    summary = run_update(RunRequest(project_dir=project, kr=["growth/rate"], as_of=DAY1))
    assert rows(summary)["growth/rate"]["status"] == "no_data"


def test_dry_run_computes_formulas_and_stores_nothing(project: Path) -> None:
    summary = run_update(RunRequest(project_dir=project, all_krs=True, as_of=DAY2, dry_run=True))
    got = rows(summary)
    assert got["growth/rate"]["value"] == "30"  # 45 / 150 * 100
    assert got["growth/doubled"]["value"] == "60"
    assert summary.run_id is None


def test_backfill_computes_formulas_at_the_past_as_of(project: Path) -> None:
    run_update(RunRequest(project_dir=project, all_krs=True, as_of=DAY2))
    summary = run_update(RunRequest(project_dir=project, backfill=True, as_of=DAY1))
    got = rows(summary)
    assert got["growth/rate"]["value"] == "25"
    assert got["growth/doubled"]["value"] == "50"
    store = Store.open(load_settings(project).resolved_store_url())
    try:
        status = {f"{r.objective_key}/{r.kr_key}": r for r in store.latest_status(at=DAY1)}
        assert str(status["growth/rate"].value) == "25"
        later = {f"{r.objective_key}/{r.kr_key}": r for r in store.latest_status()}
        assert str(later["growth/rate"].value) == "30"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("signups / 2", "formula 'signups': no KR named 'signups'. Did you mean 'signed_up'?"),
        ("[growth/nope] + 1", "formula 'growth/nope': no KR named 'growth/nope'"),
        ("[looped] + 1", "formulas reference each other in a loop"),
    ],
)
def test_load_refuses_bad_references_with_file_and_line(
    project: Path, expression: str, message: str
) -> None:
    text = OKRS.replace('"empty + 1"', f'"{expression}"')
    text = text.replace(
        "      - id: constant\n",
        "      - id: looped\n"
        "        title: Loops back\n"
        "        baseline: 0\n"
        "        target: 10\n"
        '        source: {type: formula, expression: "of_empty * 2"}\n'
        "      - id: constant\n",
    )
    (project / "okrs" / "q4.yaml").write_text(text)
    with pytest.raises(DefinitionError) as caught:
        load_definitions(load_settings(project))
    (problem,) = caught.value.problems
    assert message in problem.message
    line = text.splitlines().index(
        next(s for s in text.splitlines() if expression in s and "expression" in s)
    )
    assert problem.line == line + 1
    assert problem.loc == "objectives[1].key_results[2].source.expression"


def test_load_names_the_loop(project: Path) -> None:
    text = OKRS.replace('"[growth/rate] * 2"', '"rate * 2"').replace(
        '"activated / signed_up * 100"', '"doubled / 2"'
    )
    (project / "okrs" / "q4.yaml").write_text(text)
    with pytest.raises(DefinitionError) as caught:
        load_definitions(load_settings(project))
    (problem,) = caught.value.problems
    assert "growth/doubled → growth/rate → growth/doubled" in problem.message
    assert problem.line == 11


def test_load_refuses_an_ambiguous_bare_id_and_baseline_auto(project: Path) -> None:
    text = OKRS.replace("      - id: empty\n", "      - id: activated\n").replace(
        '"empty + 1"', '"activated + 1"'
    )
    text = text.replace(
        '        baseline: 0\n        target: 10\n        source: {type: formula, expression: "-(',
        '        baseline: auto\n        target: "+10"\n'
        '        source: {type: formula, expression: "-(',
    )
    (project / "okrs" / "q4.yaml").write_text(text)
    with pytest.raises(DefinitionError) as caught:
        load_definitions(load_settings(project))
    messages = [p.message for p in caught.value.problems]
    assert any(
        "KR id 'activated' is in several objectives (growth/activated, quality/activated)" in m
        for m in messages
    ), messages
    assert any("cannot measure 'baseline: auto'" in m for m in messages), messages
