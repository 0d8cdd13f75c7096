"""The commands that measure: ``okr run`` and ``okr backfill`` (they start Prefect)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from okr_pipeline.cli.app import (
    AsOfOpt,
    ExitCode,
    KrOpt,
    ProjectOpt,
    console,
    fail,
    parse_time,
    settings_of,
)
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_core.words import plural


def _check_run_arguments(
    settings: Settings, names: Sequence[str], when: datetime | None, allow_future: bool
) -> None:
    """Check what a run is asked for before Prefect starts (which takes seconds)."""
    from okr_pipeline.run.preflight import check_as_of, load_alert_routing

    if when is not None:
        check_as_of(when, datetime.now(UTC), allow_future)
    load_alert_routing(settings)
    if names:
        _check_kr_names(settings, names)


def _check_kr_names(settings: Settings, names: Sequence[str]) -> None:
    from okr_pipeline.okr_core.loader import fingerprint
    from okr_pipeline.run.definitions import load_definitions
    from okr_pipeline.run.record import open_store
    from okr_pipeline.run.select import resolve_name

    store = open_store(settings)
    try:
        krs = store.active_key_results()
        synced = store.definitions_fingerprint() == fingerprint(settings.resolved_okr_path())
    finally:
        store.close()
    try:
        for name in names:
            resolve_name(name, krs)
    except ConfigError:
        if synced:
            raise
        # The files changed since the last run: the name may be new there.
        known = {
            f"{objective.id}/{key_result.id}": key_result.id
            for _, objective, key_result in load_definitions(settings).key_results()
        }
        for name in names:
            if name not in known and name not in known.values():
                raise


def run(
    kr: KrOpt = None,
    all_krs: Annotated[bool, typer.Option("--all", help="Measure every KR, due or not.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Fetch and score; store nothing.")
    ] = False,
    as_of: AsOfOpt = None,
    allow_future: Annotated[
        bool, typer.Option("--allow-future", help="Accept an --as-of in the future.")
    ] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Measure the KRs that are due (or those named), score them and store the results.

    Measuring an as-of again replaces what was stored for it.
    """
    settings = settings_of(project)  # fail early, before Prefect starts, on bad settings
    when = parse_time(as_of)
    _check_run_arguments(settings, kr or [], when, allow_future)
    from okr_pipeline.cli.progress import work_progress

    with work_progress(console) as progress:
        progress.step("dry run" if dry_run else "measuring")
        from okr_pipeline.cli.measure import run_once  # imports Prefect: once the arguments hold

        summary = run_once(
            project,
            kr=kr or [],
            as_of=when,
            dry_run=dry_run,
            all_krs=all_krs,
            console=console,
            allow_future=allow_future,
            progress=progress,
        )
    if summary.errors:
        raise typer.Exit(ExitCode.SOURCES_FAILED)


def _parse_every(text: str) -> timedelta:
    from okr_pipeline.okr_core.alerting.model import AlertPolicyOverride

    try:
        delta = AlertPolicyOverride(repeat_interval=text).repeat_interval
    except ValueError:
        fail(f"--every '{text}' is not a duration; use e.g. 1d, 1w, 12h")
    assert delta is not None
    return delta


def backfill_dates(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """The as-ofs from ``start`` to ``end`` (both included when on the step), ``every`` apart."""
    dates = []
    when = start
    while when <= end:
        dates.append(when)
        when += every
    return dates


#: A backfill measures at most this many as-ofs in one command (a typo guard: --every 1m).
MAX_BACKFILL_DATES = 1000


def backfill(
    date_from: Annotated[
        str, typer.Option("--from", help="First as-of: a date (00:00 UTC) or an ISO time.")
    ],
    date_to: Annotated[str, typer.Option("--to", help="Last as-of (included).")],
    every: Annotated[str, typer.Option("--every", help="Step between as-ofs: 1d, 1w, 12h.")] = (
        "1w"
    ),
    kr: KrOpt = None,
    replace_existing: Annotated[
        bool,
        typer.Option(
            "--replace/--skip-existing",
            help="Measure again the as-ofs that already have a value (default: skip them).",
        ),
    ] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Measure past as-ofs in date order, for the sources that take an as-of.

    SQL queries that bind :as_of and HTTP sources with ${as_of} answer for a past time;
    other sources only know today's value and are skipped. No alerts are sent.
    """
    settings = settings_of(project)
    start, end = parse_time(date_from, "--from"), parse_time(date_to, "--to")
    assert start is not None and end is not None
    step = _parse_every(every)
    if end < start:
        fail(f"--to {date_to} is before --from {date_from}")
    if step <= timedelta(0):
        fail(f"--every '{every}' must be longer than zero")
    dates = backfill_dates(start, end, step)
    if len(dates) > MAX_BACKFILL_DATES:
        fail(
            f"{len(dates)} as-ofs from {date_from} to {date_to} every {every}; at most "
            f"{MAX_BACKFILL_DATES} at once: use a longer --every or a shorter range"
        )
    _check_run_arguments(settings, kr or [], end, allow_future=False)
    from okr_pipeline.cli.progress import work_progress

    with work_progress(console) as progress:
        progress.step("backfilling", 0, len(dates))
        from okr_pipeline.cli.measure import backfill as run_backfill  # imports Prefect

        summaries = run_backfill(
            project,
            dates=dates,
            kr=kr or [],
            replace_existing=replace_existing,
            console=console,
            progress=progress,
        )
    measured = sum(s.measured for s in summaries)
    errors = sum(s.errors for s in summaries)
    console.print(
        f"Backfilled {plural(len(dates), 'as-of date')}: {plural(measured, 'measurement')}, "
        f"{errors} failed.",
        highlight=False,
    )
    if errors:
        raise typer.Exit(ExitCode.SOURCES_FAILED)
