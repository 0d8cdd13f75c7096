"""``okr history KR`` (a KR's measurements with a sparkline) and ``okr export``.

Run for real on a project with a known history: a measured KR with a week that failed, a
KR off track, and a manual KR with check-ins by hand.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal

import pytest

from okr_pipeline.cli.history_commands import EXPORT_FIELDS
from okr_pipeline.cli.render import sparkline
from tests.cli.listing_project import (
    AUTHOR,
    CHECKINS,
    NOTE,
    VALUES,
    WEEKS,
    ListingProject,
    build,
)

D = Decimal
MEASUREMENTS = 2 * len(WEEKS) + len(CHECKINS)  # signups, the stuck KR, the check-ins


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ListingProject]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield build(tmp_path_factory.mktemp("history"), monkeypatch)


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ([D(1), D(2), D(3), D(4), D(5), D(6), D(7), D(8)], "▁▂▃▄▅▆▇█"),
        ([D(10), None, D(30)], "▁ █"),  # no value is a gap, not the lowest block
        ([D(3), D(3)], "▄▄"),  # all equal: a flat line in the middle
        ([None, None], "  "),
        ([], ""),
        ([D("-5"), D("0"), D("5")], "▁▅█"),
    ],
)
def test_sparkline(values: list[Decimal | None], line: str) -> None:
    assert sparkline(values) == line


def test_history_lists_measurements_with_a_sparkline_and_gaps(listing: ListingProject) -> None:
    result = listing.okr("history", "signups", width=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "growth/signups: Signups from 10 to 50"
    assert lines[1] == f"  {sparkline(VALUES)}  12.5 → 31.25 signups" and " " in sparkline(VALUES)
    assert "4 measurements, as of 2026-10-01 09:00 to 2026-10-22 09:00 UTC" in result.stdout
    rows = [line for line in lines if line.startswith("2026-10-")]
    assert [row.split()[2] for row in rows] == ["12.5", "20", "—", "31.25"]
    assert "error:" in rows[2] and "0" not in rows[2].split()[2]  # never shown as 0
    assert "by" not in lines[lines.index(rows[0]) - 2].split()  # nobody checked in: no column
    assert lines[-2:] == ["Notes", f"  2026-10-15 09:00  {AUTHOR}: {NOTE[1]}"]


def test_history_shows_check_ins_with_author_and_note(listing: ListingProject) -> None:
    result = listing.okr("history", "community/meetups", width=120)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("2026-10-")]
    assert len(rows) == len(CHECKINS)
    assert all("checkin" in row and AUTHOR in row for row in rows)
    assert "first meetup, in Lyon" in rows[0]


def test_history_limit_counts_in_words(listing: ListingProject) -> None:
    result = listing.okr("history", "signups", "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert "1 measurement of 4, as of 2026-10-22 09:00" in result.stdout


def _csv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == EXPORT_FIELDS
    return list(reader)


def test_export_csv_has_every_measurement_with_its_evaluation(listing: ListingProject) -> None:
    result = listing.okr("export")
    assert result.returncode == 0, result.stderr
    rows = _csv(result.stdout)
    assert len(rows) == MEASUREMENTS
    signups = [row for row in rows if row["ref"] == "growth/signups"]
    assert [row["value"] for row in signups] == ["" if v is None else str(v) for v in VALUES]
    assert [row["as_of"] for row in signups] == [w.isoformat() for w in WEEKS]
    failed = signups[2]
    assert (failed["outcome"], failed["value"]) == ("error", "")
    assert failed["error"] and failed["status"] in ("error", "stale")
    first = signups[0]
    assert (first["status"], first["kind"], first["objective"], first["cycle"]) == (
        "on_track",
        "measured",
        "growth",
        "2026-Q4",
    )
    assert float(first["score"]) == pytest.approx(float((D("12.5") - 10) / 40))
    assert first["reason"] == "pace only (1 point): progress 0.06 vs pace 0.00"
    checkins = [row for row in rows if row["kind"] == "checkin"]
    assert [(row["value"], row["author"], row["note"]) for row in checkins] == [
        (value, AUTHOR, note or "") for _, value, note in CHECKINS
    ]


def test_export_json_is_the_same_rows_as_an_array(listing: ListingProject) -> None:
    result = listing.okr("export", "--format", "json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert isinstance(items, list) and len(items) == MEASUREMENTS
    assert all(tuple(item) == EXPORT_FIELDS for item in items)
    rows = _csv(listing.okr("export").stdout)
    for item, row in zip(items, rows, strict=True):
        for field in EXPORT_FIELDS:
            value = item[field]
            assert ("" if value is None else str(value)) == row[field], (field, item, row)
    assert all(item["value"] is None or isinstance(item["value"], str) for item in items)


def test_export_to_a_file_and_by_cycle(listing: ListingProject) -> None:
    out = listing.project / "export" / "q4.csv"
    out.parent.mkdir()
    result = listing.okr("export", "--cycle", "2026-Q4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Wrote {MEASUREMENTS} measurements to {out}."
    assert len(_csv(out.read_text(encoding="utf-8"))) == MEASUREMENTS
    unknown = listing.okr("export", "--cycle", "2026-Q3")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "Error: no cycle '2026-Q3' in the store. Did you mean '2026-Q4'? Cycles: 2026-Q4"
    )
    assert unknown.stdout == ""
