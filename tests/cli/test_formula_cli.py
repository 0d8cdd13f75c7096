"""Formula KRs through the real ``okr`` command: validate, run --all, status --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_no_traceback, cli_env, okr
from tests.run.test_formulas import sql, write_project

__all__ = ["cli_env"]  # the fixture, imported to be used here

OKRS = f"""\
cycle: {{name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}}
objectives:
  - id: growth
    title: Grow
    owner: o@example.com
    key_results:
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
      - id: rate
        title: Activation rate from 10% to 40%
        unit: "%"
        baseline: 10
        target: 40
        source: {{type: formula, expression: "activated / signed_up * 100"}}
  - id: retention
    title: Keep them
    owner: r@example.com
    key_results:
      - id: churned
        title: Churned accounts from 20 to 5
        baseline: 20
        target: 5
        source: {sql("churned")}
      - id: kept_share
        title: Share of signups kept, from 80% to 95%
        baseline: 80
        target: 95
        source:
          type: formula
          expression: "(signed_up - churned) / signed_up * 100"
      - id: kept_vs_rate
        title: A formula of formulas
        baseline: 0
        target: 10
        source: {{type: formula, expression: "[retention/kept_share] / [growth/rate]"}}
      - id: no_churn_data
        title: No data propagates
        baseline: 0
        target: 10
        source: {{type: formula, expression: "abs(unknown_yet) + 1"}}
      - id: unknown_yet
        title: A count not in the warehouse
        baseline: 0
        target: 10
        source: {sql("nothing")}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    counts = [
        ("2026-10-04", "signed_up", 120),
        ("2026-10-04", "activated", 30),
        ("2026-10-04", "churned", 9),
    ]
    return write_project(tmp_path, OKRS, counts)


def test_run_all_then_status_json_has_the_exact_formula_values(
    project: Path, cli_env: dict[str, str]
) -> None:
    valid = okr("validate", cwd=project, env=cli_env)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    result = okr("run", "--all", "--as-of", "2026-10-05T12:00:00Z", cwd=project, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_traceback(result)
    assert "measured 8 of 8 KRs" in result.stdout
    status = okr("status", "--json", cwd=project, env=cli_env)
    assert status.returncode == 0, status.stderr
    rows = {f"{row['objective']}/{row['id']}": row for row in json.loads(status.stdout)}
    assert rows["growth/rate"]["value"] == "25"  # 30 / 120 * 100
    assert rows["retention/kept_share"]["value"] == "92.5"  # (120 - 9) / 120 * 100
    assert rows["retention/kept_vs_rate"]["value"] == "3.7"  # 92.5 / 25
    assert rows["growth/rate"]["progress"] == pytest.approx(0.5)
    assert rows["retention/no_churn_data"]["status"] == "no_data"
    assert rows["retention/no_churn_data"]["value"] is None


BROKEN = (
    OKRS.replace('"activated / signed_up * 100"', '"activatd / signed_up * 100"')
    .replace('"[retention/kept_share] / [growth/rate]"', '"[retention/kept_share] * no_churn_data"')
    .replace('"abs(unknown_yet) + 1"', '"kept_vs_rate + 1"')
)


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_validate_reports_unknown_references_and_loops_with_file_and_line(
    project: Path, cli_env: dict[str, str]
) -> None:
    (project / "okrs" / "q4.yaml").write_text(BROKEN)
    result = okr("validate", cwd=project, env=cli_env)
    assert result.returncode != 0
    assert_no_traceback(result)
    output = result.stdout + result.stderr
    rate_line = line_of(BROKEN, '"activatd / signed_up')
    assert (
        f"q4.yaml:{rate_line}: objectives[0].key_results[2].source.expression: "
        "formula 'activatd': no KR named 'activatd'. Did you mean 'activated'?"
    ) in output, output
    loop_line = line_of(BROKEN, '"[retention/kept_share] * no_churn_data"')
    assert f"q4.yaml:{loop_line}: objectives[1].key_results[2].source.expression" in output
    assert "retention/kept_vs_rate → retention/no_churn_data → retention/kept_vs_rate" in output, (
        output
    )


def test_validate_reports_a_syntax_error_with_its_column(
    project: Path, cli_env: dict[str, str]
) -> None:
    text = OKRS.replace('"activated / signed_up * 100"', '"activated / (signed_up * 100"')
    (project / "okrs" / "q4.yaml").write_text(text)
    result = okr("validate", cwd=project, env=cli_env)
    assert result.returncode != 0
    assert_no_traceback(result)
    line = line_of(text, '"activated / (signed_up')
    assert f"q4.yaml:{line}: objectives[0].key_results[2].source.expression" in result.stdout + (
        result.stderr
    )
    assert "expected ')' at the end (column 29)" in result.stdout + result.stderr
