"""Run the update flow from the command line and show what it did (``okr run``, ``backfill``).

Importing this module imports Prefect (through the flow): the commands import it only once
their arguments hold.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from okr_pipeline.cli.render import judged, print_rows
from okr_pipeline.connectors.errors import short_message
from okr_pipeline.flows.update import update_key_results
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.run.record import open_store
from okr_pipeline.run.summary import RunSummary


def run_once(
    project: Path,
    *,
    kr: list[str],
    as_of: datetime | None,
    dry_run: bool,
    all_krs: bool,
    console: Console,
    allow_future: bool = False,
) -> RunSummary:
    """Run the flow once and print what it did, then the status table as of the run."""
    summary = update_key_results(
        project_dir=str(project.resolve()),
        kr=kr,
        as_of=as_of,
        dry_run=dry_run,
        all_krs=all_krs,
        allow_future=allow_future,
    )
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.statuses.items())) or "nothing due"
    prefix = "Dry run: " if dry_run else ""
    console.print(
        f"{prefix}measured {summary.measured} of {summary.active} KRs as of "
        f"{summary.as_of.isoformat(timespec='seconds')}: {counts}.",
        highlight=False,
    )
    print_failures(console, summary)
    if dry_run:
        for row in summary.rows:
            console.print(
                f"  {row['objective']}/{row['id']}: {row['value']} → {row['status']} "
                f"({row['reason']})",
                highlight=False,
            )
        return summary
    settings = load_settings(project)
    store = open_store(settings)
    try:
        # Where the KRs stood as of this run (for a past --as-of, not today's state).
        at = summary.as_of
        rows = store.latest_status(at=at)
        print_rows(console, judged(rows, at, settings.stale_after_periods))
    finally:
        store.close()
    return summary


def print_failures(console: Console, summary: RunSummary, indent: str = "  ") -> None:
    """The run's alerts line, then one short line per alert not sent and per failed KR.

    Each failure is one line (``okr explain KR`` shows the whole error); the routing hint,
    when alerts were only recorded, is said once.
    """
    alerts = summary.alerts
    if alerts.deliveries:
        console.print(f"Alerts: {alerts.describe()}.", highlight=False)
    if alerts.hint:
        console.print(f"{indent}[yellow]![/yellow] {escape(alerts.hint)}.", highlight=False)
    for problem in alerts.failed:
        console.print(
            f"{indent}[red]alert not sent[/red] {escape(short_message(problem))}", highlight=False
        )
    for ref, message in summary.failed:
        console.print(
            f"{indent}[red]failed[/red] {escape(ref)}: {escape(short_message(message))}",
            highlight=False,
        )
    if summary.failed:
        console.print(f"{indent}('okr explain KR' shows the whole error.)", highlight=False)


def backfill(
    project: Path,
    *,
    dates: list[datetime],
    kr: list[str],
    replace_existing: bool,
    console: Console,
) -> list[RunSummary]:
    """Measure each as-of in ``dates`` in order, with a progress bar; return the summaries."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    summaries: list[RunSummary] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("Backfilling", total=len(dates))
        for when in dates:
            progress.update(task, description=f"as of {when.isoformat(timespec='minutes')}")
            summary = update_key_results(
                project_dir=str(project.resolve()),
                kr=kr,
                as_of=when,
                backfill=True,
                replace_existing=replace_existing,
            )
            summaries.append(summary)
            failed = f", {summary.errors} failed" if summary.errors else ""
            progress.console.print(
                f"  {when.isoformat(timespec='minutes')}: measured {summary.measured}{failed}",
                highlight=False,
            )
            for ref, message in summary.failed:
                progress.console.print(
                    f"    [red]failed[/red] {escape(ref)}: {escape(short_message(message))}",
                    highlight=False,
                )
            progress.advance(task)
    return summaries
