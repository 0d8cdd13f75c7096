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
from okr_pipeline.cli.suggest import complete_kr
from okr_pipeline.cli.tables import Cell, Column, Step, print_listing

#: ``okr runs``: when the table is too wide, the start time goes, then what started the
#: run, then the no-data count.
RUN_COLUMNS = (
    Column("id", justify="right"),
    Column("as of (UTC)"),
    Column("started (UTC)"),
    Column("trigger"),
    Column("status"),
    Column("KRs", justify="right"),
    Column("ok", justify="right"),
    Column("no data", justify="right"),
    Column("failed", justify="right"),
)
RUN_STEPS: tuple[Step, ...] = (
    ("started (UTC)", "drop"),
    ("trigger", "drop"),
    ("no data", "drop"),
)


def runs(
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1)] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (a list of runs) instead of a table.")
    ] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """List the latest runs: as-of, status and counts (crashed runs included)."""
    from okr_pipeline.cli.json_output import listing, run_json
    from okr_pipeline.cli.reading import open_store_to_read
    from okr_pipeline.cli.render import clock

    store = open_store_to_read(settings_of(project))
    try:
        rows = store.runs(limit)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(listing(run_json(row) for row in rows) + "\n")
        return
    if not rows:
        console.print("No runs yet: run 'okr run' first.")
        return
    cells: list[list[Cell]] = [
        [
            str(row.id),
            clock(row.as_of),
            clock(row.started_at),
            row.trigger,
            row.status,
            str(row.total),
            str(row.ok),
            str(row.no_data),
            str(row.error),
        ]
        for row in rows
    ]
    print_listing(console, RUN_COLUMNS, cells, steps=RUN_STEPS, title="Runs")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Show every KR's latest value, progress, score and status."""
    from okr_pipeline.cli.reading import open_engine_to_read
    from okr_pipeline.cli.render import judged, print_rows, status_json
    from okr_pipeline.okr_store.status_query import latest_status

    settings = settings_of(project)
    # The engine, not the Store: one query, without importing the ORM and every other query.
    engine = open_engine_to_read(settings)
    now = datetime.now(UTC)
    try:
        with engine.connect() as conn:
            # As of now: a value measured for a future time (--allow-future) waits its turn.
            rows = judged(latest_status(conn, at=now), now, settings.stale_after_periods)
    finally:
        engine.dispose()
    if as_json:
        sys.stdout.write(status_json(rows) + "\n")
        return
    if not rows:
        console.print("No key results yet: run 'okr run' first.")
        return
    print_rows(console, rows)


def explain(
    kr: Annotated[
        str,
        typer.Argument(
            help="The KR: objective/kr, or its id where unique.", autocompletion=complete_kr
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (the KR, status, history, alerts).")
    ] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Explain a KR's status: the rule that decided, forecast and band, history, alerts."""
    settings = settings_of(project)
    if as_json:
        from okr_pipeline.cli.explain_json import explain_json
        from okr_pipeline.cli.json_output import dumps

        sys.stdout.write(dumps(explain_json(settings, kr)) + "\n")
        return
    from okr_pipeline.cli.explain import explain_kr
    from okr_pipeline.cli.reading import open_store_to_read
    from okr_pipeline.cli.suggest import resolve_kr

    store = open_store_to_read(settings)
    try:
        # Resolved here first so that a typo gets "did you mean" like every other command.
        ref = resolve_kr(kr, store.active_key_results()).ref
    finally:
        store.close()
    explain_kr(settings, ref, console)
