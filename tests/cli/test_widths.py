"""Every listing reads well in an 80-column terminal and in a 200-column one.

Each command runs for real (``python -m okr_pipeline``) on a store filled like the demo's,
with ``COLUMNS`` set. No line is wider than the terminal, no KR id is split over two lines,
no id or time is cut short with "…"; at 80 columns the columns that do not fit give way in
the stated order instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from okr_pipeline.cli.render import STATUS_STEPS, clock
from okr_pipeline.cli.tables import Cell, Column, plan, print_listing
from tests.cli.demo_store import SILENCE_REASON, SILENCED, DemoStore, fill_demo

WIDTHS = (80, 200)
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStore]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield fill_demo(tmp_path_factory.mktemp("widths"), monkeypatch)


def whole(word: str, text: str) -> bool:
    """True when ``word`` stands whole on one line of ``text`` (not inside a longer id)."""
    pattern = re.compile(rf"(?<![\w/-]){re.escape(word)}(?![\w/-])")
    return any(pattern.search(line) for line in text.splitlines())


def assert_fits(text: str, width: int) -> None:
    too_long = [line for line in text.splitlines() if cell_len(line) > width]
    assert not too_long, f"{len(too_long)} lines wider than {width}:\n" + "\n".join(too_long)
    assert "…" not in text, text


def listed(demo: DemoStore, width: int, *args: str) -> str:
    result = demo.okr(*args, width=width)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    assert_fits(result.stdout, width)
    return result.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_status_keeps_every_kr_id_whole(demo: DemoStore, width: int) -> None:
    out = listed(demo, width, "status")
    for kr_id in demo.kr_ids:
        assert whole(kr_id, out), (kr_id, out)
    assert "weekly-active-" not in out.replace("weekly-active-listeners", "")
    header = next(line for line in out.splitlines() if line.startswith("KR "))
    if width == 200:  # everything, the progress bars included
        assert header.split() == [
            "KR",
            "Value",
            "Target",
            "Progress",
            "Score",
            "Status",
            "Measured",
        ]
        assert "█" in out or "░" in out
    else:  # the bar has given way to its percentage, and nothing else had to
        assert STATUS_STEPS[0] == ("Progress", "narrow")
        assert header.split() == [
            "KR",
            "Value",
            "Target",
            "Progress",
            "Score",
            "Status",
            "Measured",
        ]
        assert "█" not in out and "░" not in out and "%" in out
    assert "Why" in out  # the reasons, wrapped within the width too


@pytest.mark.parametrize("width", WIDTHS)
def test_runs_show_whole_times(demo: DemoStore, width: int) -> None:
    out = listed(demo, width, "runs")
    runs = json.loads(demo.okr("runs", "--json").stdout)
    assert runs
    for run in runs:
        assert re.search(rf"^\s*{run['id']}\s+", out, re.MULTILINE), out
        assert any(clock_of(run["as_of"]) in line for line in out.splitlines()), (run["as_of"], out)


def clock_of(iso: str) -> str:
    from datetime import datetime

    return clock(datetime.fromisoformat(iso))


@pytest.mark.parametrize("width", WIDTHS)
def test_alerts_show_whole_krs_and_times(demo: DemoStore, width: int) -> None:
    out = listed(demo, width, "alerts")
    alerts = json.loads(demo.okr("alerts", "--json").stdout)
    assert alerts, "the demo sends alerts"
    for alert in alerts:
        assert whole(alert["kr"], out), (alert["kr"], out)
        assert clock_of(alert["created_at"]) in out
        # The alert's kind and transition are ids: on one line, never wrapped apart.
        assert f"{alert['kind']} {alert['transition']}" in out, (alert, out)
        assert re.search(rf"\b{alert['delivery']}\b", out), (alert["delivery"], out)
    if width == 200:
        assert "channel" in out and "route" in out
    else:  # the longest KR id leaves no room for a table: each alert folds under its KR
        assert re.search(r"^  when \(UTC\) [\d-]+ [\d:]+ · alert off_track \w+", out, re.M), out
    assert all(len(TIME.findall(line)) <= 1 for line in out.splitlines())


@pytest.mark.parametrize("width", WIDTHS)
def test_silences_wrap_the_reason_not_the_target(demo: DemoStore, width: int) -> None:
    out = listed(demo, width, "silences")
    assert whole(SILENCED, out), out
    assert (SILENCE_REASON in out) == (width == 200)  # at 80 it wraps, whole words only
    assert SILENCE_REASON in " ".join(out.split())
    assert len(TIME.findall(out)) == (2 if width == 200 else 1)  # 'created' gives way first


@pytest.mark.parametrize("width", WIDTHS)
def test_connectors_keep_their_type_names(demo: DemoStore, width: int) -> None:
    out = listed(demo, width, "connectors")
    for connector in json.loads(demo.okr("connectors", "--json").stdout):
        assert whole(connector["type"], out), (connector["type"], out)
    assert ("okr-pipeline" in out) == (width == 200)  # the package column goes first


@pytest.mark.parametrize("width", WIDTHS)
def test_explain_and_history_fit(demo: DemoStore, width: int) -> None:
    # The longest ref, and one whose alert fired and resolved (its explanation lists both).
    refs = [max(demo.refs, key=len), "support-excellence/uptime"]
    for ref in refs:
        out = listed(demo, width, "explain", ref)
        assert whole(ref, out), out
    for ref in refs:
        out = listed(demo, width, "history", ref)
        assert whole(ref, out), out
        for item in json.loads(demo.okr("history", ref, "--json").stdout)["measurements"]:
            assert clock_of(item["as_of"]) in out


def test_a_table_too_wide_for_its_kept_columns_folds_each_row_under_its_id() -> None:
    console = Console(width=30, record=True, color_system=None)
    columns = (Column("KR"), Column("Value", justify="right"), Column("Status"))
    long_id = "a-long-key-result-identifier"  # with its value and status: wider than 30
    print_listing(console, columns, [[long_id, "12", Text("on_track")], ["short", "3", "at_risk"]])
    lines = console.export_text().splitlines()
    assert lines[0].strip() == long_id
    assert "Value 12 · Status on_track" in lines[1]
    assert lines[2].strip() == "short" and "Value 3" in lines[3]


def test_a_folded_row_breaks_between_cells_only() -> None:
    console = Console(width=40, record=True, color_system=None)
    columns = (Column("KR"), Column("alert"), Column("route"), Column("delivery"))
    row: list[Cell] = ["growth/signups", "off_track firing", "default-route", "sent"]
    print_listing(console, columns, [row])
    lines = console.export_text().splitlines()
    # "  alert off_track firing · route default-route" would be 46: the line breaks there.
    assert lines == [
        "growth/signups",
        "  alert off_track firing",
        "  route default-route · delivery sent",
    ]


def test_columns_give_way_in_the_stated_order() -> None:
    columns = (Column("id"), Column("a"), Column("b"), Column("note", wrap=True, min_width=4))
    rows = [["x" * 10, "y" * 10, "z" * 10, "one two three four"]]
    wide = plan(columns, rows, 200, [("b", "drop"), ("a", "drop")])
    assert wide is not None and wide.indices == (0, 1, 2, 3)
    assert wide.widths[3] == len("one two three four")  # room to spare: no wrapping
    tight = plan(columns, rows, 10 + 2 + 10 + 2 + 5, [("b", "drop"), ("a", "drop")])
    assert tight is not None and tight.indices == (0, 1, 3) and tight.width <= 29
    assert plan(columns, rows, 12, [("b", "drop"), ("a", "drop")]) is None
