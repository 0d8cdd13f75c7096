"""Run the update from the command line and show what it did (``okr run``, ``backfill``).

The update is the Prefect flow unless the caller passes another runner with the flow's
parameters (``okr run`` without Prefect: :func:`okr_pipeline.cli.run_commands.run_plain`);
the flow, and Prefect with it, is imported only when used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from okr_pipeline.cli.progress import WorkProgress, work_progress
from okr_pipeline.cli.render import judged, print_rows
from okr_pipeline.connectors.errors import short_message
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.run.record import open_store
from okr_pipeline.run.summary import RunSummary

#: Runs one update: the flow's parameters (``project_dir``, ``kr``, ``as_of``...), its summary.
Runner = Callable[..., RunSummary]


def _flow() -> Runner:
    from okr_pipeline.flows.update import update_here  # imports Prefect: seconds

    return update_here


def run_once(
    project: Path,
    *,
    kr: list[str],
    as_of: datetime | None,
    dry_run: bool,
    all_krs: bool,
    console: Console,
    allow_future: bool = False,
    progress: WorkProgress | None = None,
    update: Runner | None = None,
) -> RunSummary:
    """Run the update once and print what it did, then the status table as of the run.

    A progress line shows the run's phases meanwhile (on a terminal only); a caller with
    its own (``okr demo``) passes it. ``update`` runs it (default: the Prefect flow).
    """
    run = update or _flow()
    with contextlib.ExitStack() as stack:
        shown = progress or stack.enter_context(work_progress(console))
        with shown.flow_run():
            summary = run(
                project_dir=str(project.resolve()),
                kr=kr,
                as_of=as_of,
                dry_run=dry_run,
                all_krs=all_krs,
                allow_future=allow_future,
            )
        shown.stop()  # the run's output replaces the progress line
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
    progress: WorkProgress | None = None,
    update: Runner | None = None,
) -> list[RunSummary]:
    """Measure each as-of in ``dates`` in order, with a progress line; return the summaries.

    One line per as-of stays (what it measured, what failed); the progress line (a bar over
    the as-ofs, the run's phase) shows on a terminal only, like ``okr run``'s. ``update``
    runs each (default: the Prefect flow).
    """
    run = update or _flow()
    summaries: list[RunSummary] = []
    with contextlib.ExitStack() as stack:
        progress = progress or stack.enter_context(work_progress(console))
        out = progress.console
        for done, when in enumerate(dates):
            stamp = when.isoformat(timespec="minutes")
            progress.step(f"as of {stamp}", done, len(dates))
            with progress.flow_run():
                summary = run(
                    project_dir=str(project.resolve()),
                    kr=kr,
                    as_of=when,
                    backfill=True,
                    replace_existing=replace_existing,
                )
            summaries.append(summary)
            failed = f", {summary.errors} failed" if summary.errors else ""
            out.print(f"  {stamp}: measured {summary.measured}{failed}", highlight=False)
            for ref, message in summary.failed:
                out.print(
                    f"    [red]failed[/red] {escape(ref)}: {escape(short_message(message))}",
                    highlight=False,
                )
    return summaries
