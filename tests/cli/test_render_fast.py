"""``okr status`` writes its lines itself where Rich would only lay them out one by one.

The output must be what Rich prints, character for character and escape for escape: each
case is printed both ways (the lines written directly, and everything through Rich's
tables and wrapping) on consoles of several widths, with and without colours.
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from rich.console import Console

from okr_pipeline.cli import render
from okr_pipeline.okr_store.records import StatusRow
from tests.cli.test_render_scores import AS_OF, NOW, failing, row

LONG = "a reason long enough to be wrapped on a narrow terminal, " * 3


def rows() -> list[StatusRow]:
    grow = [
        row("first-time-listeners", "136", 0.36),
        row("b", "166", 0.66, unit="%", status="at_risk", reason="forecast 0.6 < 0.7"),
        failing("166", kr_key="c-日本語"),
        row("d", None, None, outcome=None, measured_at=None, last_good_at=None, status=None),
    ]
    ops = [
        replace(
            row("uptime", "99.95", 1.0, unit="ms", status="off_track", reason=LONG),
            objective_key="ops",
            objective_title="Keep the lights on for every listener, everywhere, at all hours",
            parent_key="grow",
        ),
        replace(
            row("latency", "1e12", 0.1, status="stale", reason="no value for 9d"),
            objective_key="ops",
            measured_at=AS_OF - timedelta(days=9),
        ),
        replace(
            row("plain", "12", 0.2, target_value=Decimal("123456789")),
            objective_key="ops",
            objective_type="committed",
        ),
    ]
    return [*grow, *ops]


def printed(width: int, colours: bool, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    console = Console(
        width=width,
        file=io.StringIO(),
        force_terminal=colours,
        color_system="truecolor" if colours else None,
        legacy_windows=False,
    )
    with monkeypatch.context() as patch:
        if not fast:  # everything through Rich, as before the direct lines
            patch.setattr(render._Lines, "text", lambda *args, **kwargs: False)
            patch.setattr(render._Lines, "table", lambda *args, **kwargs: False)
        render.print_rows(console, render.judged(rows(), NOW, 3.0))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


@pytest.mark.parametrize("colours", [False, True], ids=["plain", "colours"])
@pytest.mark.parametrize("width", [200, 120, 80, 62, 50, 30])
def test_the_direct_lines_are_what_rich_prints(
    width: int, colours: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = printed(width, colours, fast=True, monkeypatch=monkeypatch)
    assert fast == printed(width, colours, fast=False, monkeypatch=monkeypatch)
    assert "first-time-listeners" in fast and "c-日本語" in fast


def test_the_tables_are_written_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The case above would pass by Rich doing all the work: here it must not be asked."""
    built: list[object] = []
    real = render.build_table
    monkeypatch.setattr(render, "build_table", lambda *a, **k: built.append(a) or real(*a, **k))
    no_carried = [r for r in rows() if r.status != "error"]
    console = Console(width=200, file=io.StringIO(), color_system=None)
    render.print_rows(console, render.judged(no_carried, NOW, 3.0))
    assert built == []
    assert "uptime" in console.file.getvalue()  # type: ignore[attr-defined]
