"""Commands that read the store: runs, status and explain (they never import Prefect)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from okr_pipeline.cli.app import (
    ProjectOpt,
    console,
    settings_of,
)


def runs(
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1)] = 20,
    project: ProjectOpt = Path("."),
) -> None:
    """List the latest runs: as-of, status and counts (crashed runs included)."""
    from rich.table import Table

    from okr_pipeline.run.record import open_store

    store = open_store(settings_of(project))
    try:
        rows = store.runs(limit)
    finally:
        store.close()
    if not rows:
        console.print("No runs yet: run 'okr run' first.")
        return
    table = Table(title="Runs", title_justify="left")
    for name in ("id", "as of", "started", "status", "KRs", "ok", "no data", "failed"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            str(row.id),
            row.as_of.isoformat(timespec="minutes"),
            row.started_at.isoformat(timespec="seconds"),
            row.status,
            str(row.total),
            str(row.ok),
            str(row.no_data),
            str(row.error),
        )
    console.print(table)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Show every KR's latest value, progress, score and status."""
    from okr_pipeline.cli.render import judged, print_rows, status_json
    from okr_pipeline.run.record import open_store

    settings = settings_of(project)
    store = open_store(settings)
    now = datetime.now(UTC)
    try:
        # As of now: a value measured for a future time (--allow-future) waits its turn.
        rows = judged(store.latest_status(at=now), now, settings.stale_after_periods)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(status_json(rows) + "\n")
        return
    if not rows:
        console.print("No key results yet: run 'okr run' first.")
        return
    print_rows(console, rows)


def explain(
    kr: Annotated[str, typer.Argument(help="The KR: objective/kr, or its id where unique.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Explain a KR's status: the rule that decided, forecast and band, history, alerts."""
    from okr_pipeline.cli.explain import explain_kr

    explain_kr(settings_of(project), kr, console)
