"""A project with jira, github and csv KRs, through the real CLI: ``okr run --all``, ``status``.

The connections point at the local server answering in Jira's and GitHub's documented
shapes (``servers.py``); the CSV KRs read a file of the project (a relative path: ``okr``
runs in the project folder) and a CSV the server serves. The run is as of a fixed moment.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import assert_no_traceback, cli_env, okr
from tests.connectors.trackers import servers

__all__ = ["cli_env"]  # the fixture, imported for pytest

AS_OF = "2026-11-02T12:00:00Z"

OKRS = """\
cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
objectives:
  - id: delivery
    title: Ship what we promised
    owner: o@example.com
    key_results:
      - id: resolved
        title: Resolved Jira issues from 0 to 100
        baseline: 0
        target: 100
        source:
          type: jira
          connection: jira
          jql: "project = CLI AND resolved <= ${as_of:date}"
          email: okr-bot@example.com
          api_token_secret: jira_token
      - id: closed
        title: GitHub issues closed this cycle from 0 to 100
        baseline: 0
        target: 100
        source:
          type: github
          connection: github
          repo: acme/cli
          kind: issue
          date_field: closed
          token_secret: gh_token
      - id: nps
        title: NPS from the weekly sheet
        baseline: 0
        target: 50
        source:
          type: csv
          path: data/weekly.csv
          column: nps
          as_of_column: week
      - id: signups
        title: Web signups from the published sheet
        baseline: 0
        target: 200
        source:
          type: csv
          url: "{url}/sheet.csv"
          column: signups
          aggregate: sum
          where: {team: web}
      - id: empty
        title: A week with no answer yet
        baseline: 0
        target: 1
        source: {type: csv, path: data/weekly.csv, column: nps, where: {week: "2026-11-09"}}
"""


def test_run_and_status(tracker_url: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "okrs").mkdir()
    (tmp_path / "okrs" / "delivery.yaml").write_text(OKRS.replace("{url}", tracker_url))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "weekly.csv").write_text(
        "week,nps\n2026-10-05,31.5\n2026-10-26,40.25\n2026-11-09,\n"
    )
    (tmp_path / ".env").write_text(
        f"OKR_CONNECTIONS__JIRA__URL={tracker_url}\n"
        f"OKR_CONNECTIONS__GITHUB__URL={tracker_url}\n"
        f"OKR_SECRETS__JIRA_TOKEN={servers.JIRA_TOKEN}\n"
        f"OKR_SECRETS__GH_TOKEN={servers.GITHUB_TOKEN}\n"
    )
    validated = okr("validate", cwd=tmp_path, env=cli_env)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    result = okr("run", "--all", "--as-of", AS_OF, cwd=tmp_path, env=cli_env)
    assert_no_traceback(result)
    assert "measured 5 of 5 KRs" in result.stdout, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert servers.JIRA_TOKEN not in output and servers.GITHUB_TOKEN not in output
    status = okr("status", "--json", cwd=tmp_path, env=cli_env)
    rows = {row["id"]: row for row in json.loads(status.stdout)}
    assert rows["resolved"]["value"] == "23"
    assert rows["closed"]["value"] == "58"
    assert rows["nps"]["value"] == "40.25"
    assert rows["signups"]["value"] == "136"  # 10 + 12 + 15 + 99
    assert rows["empty"]["value"] is None and rows["empty"]["status"] == "no_data"
