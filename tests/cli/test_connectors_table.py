"""The README's table of connectors is what `okr connectors` prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from okr_pipeline.connectors.registry import describe_sources

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_rows() -> dict[str, tuple[str, str, str]]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- connectors-table", 1)[1].split("<!-- /connectors-table -->", 1)[0]
    rows = {}
    for line in block.splitlines():
        match = re.match(r"\| \[`(\w+)`\]\(#[\w-]+\) \| (.+) \| (.+) \| (.+) \|$", line)
        if match:
            rows[match[1]] = (match[2], match[3], match[4])
    return rows


def test_readme_table_lists_every_builtin_connector_as_its_metadata_says() -> None:
    ours = {
        row.type: (row.reads, row.authentication, row.tested_against)
        for row in describe_sources()
        if row.distribution.startswith("okr-pipeline ")
    }
    assert len(ours) >= 13
    assert readme_rows() == ours


def test_okr_connectors_prints_the_same_rows() -> None:
    env = {**os.environ, "COLUMNS": "400"}  # wide enough that no cell wraps
    result = subprocess.run(
        [sys.executable, "-m", "okr_pipeline", "connectors"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name, cells in readme_rows().items():
        row = next((line for line in lines if line.startswith(f"{name} ")), None)
        assert row is not None, f"{name} not in:\n{result.stdout}"
        for cell in cells:
            assert cell in row, (name, cell, row)
