"""The commands that measure: ``okr run`` and ``okr backfill``.

Where they run (:func:`choose_runner`): on the Prefect API that is configured
(``PREFECT_API_URL``, the active Prefect profile), as a flow run seen in its UI; with
``--prefect`` and none configured, on a temporary Prefect server that okr starts for the
command (:mod:`okr_pipeline.flows.temporary_api`: seconds); otherwise without Prefect at
all, the same steps as plain calls (:func:`run_plain`), which a small project runs in well
under a second. Such a run says so, in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from okr_pipeline.cli.app import (
    AsOfOpt,
    ExitCode,
    KrOpt,
    PrefectOpt,
    ProjectOpt,
    console,
    fail,
    parse_time,
    settings_of,
)
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import Settings, settings_in_blocks
from okr_pipeline.okr_core.words import plural

if TYPE_CHECKING:
    from okr_pipeline.cli.measure import Runner
    from okr_pipeline.run.summary import RunSummary

#: What a run without Prefect says, once, after its output.
WITHOUT_PREFECT = (
    "Ran without Prefect (no Prefect API configured); to see runs in the Prefect UI, "
    "set PREFECT_API_URL or use 'okr serve'."
)


def run_plain(
    project_dir: str = ".",
    kr: list[str] | None = None,
    as_of: datetime | None = None,
    dry_run: bool = False,
    all_krs: bool = False,
    backfill: bool = False,
    replace_existing: bool = False,
    allow_future: bool = False,
) -> RunSummary:
    """One update without Prefect: the flow's steps as plain calls, the flow's parameters.

    Like the flow, it writes the HTML report when ``report_dir`` is set; a report that
    cannot be written is said in one line, and the run still counts.
    """
    from okr_pipeline.okr_core.settings import load_settings
    from okr_pipeline.run.update import RunRequest, run_update

    request = RunRequest(
        project_dir=Path(project_dir),
        kr=tuple(kr or ()),
        as_of=as_of,
        dry_run=dry_run,
        all_krs=all_krs,
        backfill=backfill,
        replace_existing=replace_existing,
        allow_future=allow_future,
    )
    settings = load_settings(request.project_dir)
    summary = run_update(request, settings=settings)
    if settings.report_dir is not None and not dry_run:
        _write_report(settings)
    return summary


def _write_report(settings: Settings) -> None:
    from okr_pipeline.okr_core.redaction import redact_text
    from okr_pipeline.web.report import write_report

    try:
        write_report(settings)
    except Exception as exc:  # noqa: BLE001 - the run's results are stored already
        console.print(
            f"[yellow]![/yellow] The report could not be written: {redact_text(str(exc))}",
            highlight=False,
            markup=True,
        )


def choose_runner(settings: Settings | None, prefect: bool) -> Runner | None:
    """How this command runs its updates: None for the Prefect flow, else a plain runner.

    The flow when ``--prefect`` is given or a Prefect API is configured; else
    :func:`run_plain`, Prefect not even imported.

    Raises:
        ConfigError: No Prefect, yet a setting is a ``prefect-block://`` reference (only
            Prefect can read it).
    """
    from okr_pipeline.flows.temporary_api import prefect_api_configured

    if prefect or prefect_api_configured():
        return None
    named = settings_in_blocks(settings) if settings is not None else []
    if named:
        raise ConfigError(
            f"{', '.join(named)} names a Prefect block (prefect-block://), and no Prefect API "
            "is configured: set PREFECT_API_URL to the Prefect server that holds the block, "
            "or run with --prefect (a temporary server, with the blocks of PREFECT_HOME)"
        )
    from okr_pipeline.cli.progress import without_prefect

    without_prefect()
    return run_plain


def say_without_prefect(runner: Runner | None) -> None:
    """One line after the output of a run without Prefect: how to see runs in its UI."""
    if runner is not None:
        console.print(f"[dim]{WITHOUT_PREFECT}[/dim]", highlight=False, soft_wrap=True)


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
    prefect: PrefectOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Measure the KRs that are due (or those named), score them and store the results.

    Measuring an as-of again replaces what was stored for it. Runs as a Prefect flow when
    a Prefect API is configured (or with --prefect); else without Prefect, and says so.
    """
    settings = settings_of(project)  # fail early, before Prefect starts, on bad settings
    when = parse_time(as_of)
    _check_run_arguments(settings, kr or [], when, allow_future)
    runner = choose_runner(settings, prefect)
    from okr_pipeline.cli.progress import work_progress

    with work_progress(console) as progress:
        progress.step("dry run" if dry_run else "measuring")
        from okr_pipeline.cli.measure import run_once

        summary = run_once(
            project,
            kr=kr or [],
            as_of=when,
            dry_run=dry_run,
            all_krs=all_krs,
            console=console,
            allow_future=allow_future,
            progress=progress,
            update=runner,  # the flow (and Prefect) is imported once the arguments hold
        )
    say_without_prefect(runner)
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
    prefect: PrefectOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Measure past as-ofs in date order, for the sources that take an as-of.

    SQL queries that bind :as_of and HTTP sources with ${as_of} answer for a past time;
    other sources only know today's value and are skipped. No alerts are sent. Like
    'okr run', runs on Prefect when a Prefect API is configured (or with --prefect).
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
    runner = choose_runner(settings, prefect)
    from okr_pipeline.cli.progress import work_progress

    with work_progress(console) as progress:
        progress.step("backfilling", 0, len(dates))
        from okr_pipeline.cli.measure import backfill as run_backfill

        summaries = run_backfill(
            project,
            dates=dates,
            kr=kr or [],
            replace_existing=replace_existing,
            console=console,
            progress=progress,
            update=runner,
        )
    measured = sum(s.measured for s in summaries)
    errors = sum(s.errors for s in summaries)
    console.print(
        f"Backfilled {plural(len(dates), 'as-of date')}: {plural(measured, 'measurement')}, "
        f"{errors} failed.",
        highlight=False,
    )
    say_without_prefect(runner)
    if errors:
        raise typer.Exit(ExitCode.SOURCES_FAILED)
