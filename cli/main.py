"""The ``okr`` command line.

Every user mistake ends as one red line ``Error: ...`` and a documented exit code; the
traceback is shown only with ``--debug``. Prefect is imported only by the commands that run
flows, so that ``okr validate`` and ``okr status`` answer at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from okr_pipeline.flows.prefect_env import apply_quiet_defaults
from okr_pipeline.okr_core.alerting.routing import RoutingError
from okr_pipeline.okr_core.errors import ConfigError, DefinitionError, OkrError
from okr_pipeline.okr_core.settings import Settings, load_settings, mask_url
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException

if TYPE_CHECKING:
    from okr_pipeline.okr_store.store import Store


class ExitCode(IntEnum):
    """Exit codes of ``okr``."""

    OK = 0
    USER_ERROR = 1  # a file, a setting or an argument needs fixing
    USAGE = 2  # the command line itself is wrong (Typer's own code)
    SOURCES_FAILED = 3  # the run completed, but some KRs' sources failed
    INTERNAL = 70  # a bug: please report it with the --debug output


console = Console()
err_console = Console(stderr=True)
app = typer.Typer(
    name="okr",
    help="Key results that update themselves: validate OKR files, measure, score and report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the store's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

_state = {"debug": False}

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", help="Project folder (holds okrs/, .env, okr.toml).")
]


def fail(message: str, code: ExitCode = ExitCode.USER_ERROR) -> NoReturn:
    """Print ``Error: message`` in red on stderr and exit with ``code``."""
    err_console.print(f"[red]Error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_problems(problems: Sequence[object]) -> None:
    """One red line per problem in the OKR files (file:line: place: what is wrong)."""
    for problem in problems:
        err_console.print(f"[red]✗[/red] {escape(str(problem))}", highlight=False, soft_wrap=True)


@app.callback()
def _main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    _state["debug"] = debug
    # Set before Prefect is imported (commands import it lazily): run and demo print their
    # own summary, so Prefect's log lines stay off the terminal unless --debug is given.
    apply_quiet_defaults(
        console_logs=debug or ctx.invoked_subcommand not in ("run", "demo", "backfill")
    )


def _settings(project: Path) -> Settings:
    if not project.is_dir():
        fail(f"project folder '{project}' does not exist")
    return load_settings(project)


@app.command()
def validate(
    path: Annotated[
        Path | None, typer.Argument(help="OKR file or folder (default: the project's okrs/).")
    ] = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Check OKR files and list every problem, with file, place and line."""
    from okr_pipeline.run.definitions import load_definitions

    settings = _settings(project)
    if path is not None:
        settings = settings.model_copy(update={"okr_path": path.resolve()})
    try:
        okr_set = load_definitions(settings)
    except DefinitionError as exc:
        print_problems(exc.problems)
        fail(f"{len(exc.problems)} problem(s) in {settings.resolved_okr_path()}")
    from okr_pipeline.run.preflight import load_alert_routing

    routing = load_alert_routing(settings)
    objectives = list(okr_set.objectives())
    krs = list(okr_set.key_results())
    for warning in okr_set.warnings:
        console.print(f"[yellow]![/yellow] {escape(str(warning))}", highlight=False, soft_wrap=True)
    console.print(
        f"[green]✓[/green] {len(okr_set.files)} file(s), {len(objectives)} objective(s), "
        f"{len(krs)} key result(s): valid."
    )
    if settings.resolved_alerts_path().exists():
        console.print(
            f"[green]✓[/green] {settings.resolved_alerts_path().name}: "
            f"{len(routing.routes)} route(s) and the default route: valid."
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the OKR file format (for editors)."""
    from okr_pipeline.cli.schema import okr_file_schema

    console.print_json(json.dumps(okr_file_schema()))


def _parse_time(text: str | None, option: str = "--as-of") -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} '{text}' is not an ISO 8601 date or time (e.g. 2026-11-24T09:00:00Z)")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Evaluate as of this ISO 8601 time (UTC if no zone).")
]
KrOpt = Annotated[
    list[str] | None,
    typer.Option("--kr", help="Only this KR (objective/kr or a unique id); repeatable."),
]


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


@app.command()
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
    settings = _settings(project)  # fail early, before Prefect starts, on bad settings
    when = _parse_time(as_of)
    _check_run_arguments(settings, kr or [], when, allow_future)
    from okr_pipeline.flows.runner import run_once  # imports Prefect: only once the arguments hold

    summary = run_once(
        project,
        kr=kr or [],
        as_of=when,
        dry_run=dry_run,
        all_krs=all_krs,
        console=console,
        allow_future=allow_future,
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


@app.command()
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
    settings = _settings(project)
    start, end = _parse_time(date_from, "--from"), _parse_time(date_to, "--to")
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
    from okr_pipeline.flows.runner import backfill as run_backfill  # imports Prefect

    summaries = run_backfill(
        project, dates=dates, kr=kr or [], replace_existing=replace_existing, console=console
    )
    measured = sum(s.measured for s in summaries)
    errors = sum(s.errors for s in summaries)
    console.print(
        f"Backfilled {len(dates)} as-of(s): {measured} measurement(s), {errors} failed.",
        highlight=False,
    )
    if errors:
        raise typer.Exit(ExitCode.SOURCES_FAILED)


#: A backfill measures at most this many as-ofs in one command (a typo guard: --every 1m).
MAX_BACKFILL_DATES = 1000


@app.command()
def runs(
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1)] = 20,
    project: ProjectOpt = Path("."),
) -> None:
    """List the latest runs: as-of, status and counts (crashed runs included)."""
    from okr_pipeline.run.record import open_store
    from rich.table import Table

    store = open_store(_settings(project))
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


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Show every KR's latest value, progress, score and status."""
    from okr_pipeline.cli.render import judged, print_rows, status_json
    from okr_pipeline.flows.update import utcnow
    from okr_pipeline.run.record import open_store

    settings = _settings(project)
    store = open_store(settings)
    now = utcnow()
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


def _parse_until(text: str) -> datetime:
    """An ISO date or time, or a duration from now such as 3d, 12h, 2w."""
    from okr_pipeline.okr_core.alerting.model import AlertPolicyOverride

    now = datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            delta = AlertPolicyOverride(repeat_interval=text).repeat_interval
        except ValueError:
            fail(f"--until '{text}' is neither a date (2026-12-01), a time nor a duration (3d)")
        assert delta is not None
        return now + delta
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= now:
        fail(f"--until {when.isoformat()} is in the past")
    return when


@app.command()
def silence(
    target: Annotated[
        str, typer.Argument(help="A KR (objective/kr, or a unique KR id) or an objective id.")
    ],
    until: Annotated[
        str, typer.Option("--until", help="Until when: a date, a time, or a duration (3d).")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Silence a KR's or an objective's alerts: recorded, not sent, until the date."""
    from okr_pipeline.run.record import open_store
    from okr_pipeline.run.select import resolve_name

    store = open_store(_settings(project))
    try:
        krs = store.active_key_results()
        objectives = {kr.objective_key for kr in krs}
        ref = target if target in objectives else resolve_name(target, krs).ref
        if not reason.strip():
            fail("--reason must say why (it is kept with the silence)")
        added = store.add_silence(ref, _parse_until(until), reason, datetime.now(UTC))
    finally:
        store.close()
    console.print(
        f"Silenced {added.target} until {added.until.isoformat(timespec='minutes')} "
        f"(silence {added.id}): {added.reason}",
        highlight=False,
    )


@app.command()
def silences(
    expired: Annotated[bool, typer.Option("--expired", help="Include expired ones.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """List the silences."""
    from okr_pipeline.run.record import open_store
    from rich.table import Table

    store = open_store(_settings(project))
    try:
        rows = store.silences(None if expired else datetime.now(UTC), include_expired=expired)
    finally:
        store.close()
    if not rows:
        console.print("No silences.")
        return
    table = Table(title="Silences", title_justify="left")
    for name in ("id", "target", "until", "reason", "created"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            str(row.id),
            row.target,
            row.until.isoformat(timespec="minutes"),
            row.reason,
            row.created_at.isoformat(timespec="minutes"),
        )
    console.print(table)


@app.command()
def unsilence(
    silence_id: Annotated[int, typer.Argument(help="The silence's id ('okr silences').")],
    project: ProjectOpt = Path("."),
) -> None:
    """Remove a silence."""
    from okr_pipeline.run.record import open_store

    store = open_store(_settings(project))
    try:
        removed = store.remove_silence(silence_id, datetime.now(UTC))
    finally:
        store.close()
    if not removed:
        fail(f"no active silence {silence_id}; 'okr silences' lists them")
    console.print(f"Removed silence {silence_id}.")


@app.command()
def alerts(
    kr: Annotated[str | None, typer.Option("--kr", help="Only this KR (objective/kr).")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1)] = 50,
    project: ProjectOpt = Path("."),
) -> None:
    """List recent alerts: sent, silenced, held back or failed to send."""
    from okr_pipeline.run.record import open_store
    from rich.table import Table

    store = open_store(_settings(project))
    try:
        ref = None if kr is None else _resolve_ref(store, kr)
        rows = store.recent_alerts(limit=limit, ref=ref)
    finally:
        store.close()
    if not rows:
        console.print("No alerts yet.")
        return
    table = Table(title="Recent alerts", title_justify="left")
    for name in ("when", "KR", "alert", "route", "channel", "delivery"):
        table.add_column(name)
    for row in rows:
        delivery = row.delivery if not row.error else f"{row.delivery}: {row.error}"
        table.add_row(
            row.created_at.isoformat(timespec="minutes"),
            row.ref,
            f"{row.kind} {row.transition}",
            row.route,
            row.channel or "—",
            escape(delivery),
        )
    console.print(table)


def _resolve_ref(store: Store, name: str) -> str:
    from okr_pipeline.run.select import resolve_name

    return resolve_name(name, store.active_key_results()).ref


@app.command()
def explain(
    kr: Annotated[str, typer.Argument(help="The KR: objective/kr, or its id where unique.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Explain a KR's status: the rule that decided, forecast and band, history, alerts."""
    from okr_pipeline.cli.explain import explain_kr

    explain_kr(_settings(project), kr, console)


@app.command()
def connectors() -> None:
    """List the installed metric source connectors."""
    from okr_pipeline.connectors.registry import describe_sources
    from rich.table import Table

    table = Table(title="Installed connectors", title_justify="left")
    for name in ("type", "class", "package", "description"):
        table.add_column(name)
    for row in describe_sources():
        table.add_row(*[str(cell) for cell in row])
    console.print(table)


@app.command()
def serve(
    cron: Annotated[
        str, typer.Option(help="How often the flow runs; each run measures the KRs that are due.")
    ] = "*/15 * * * *",
    name: Annotated[str, typer.Option(help="Deployment name.")] = "okr-update",
    project: ProjectOpt = Path("."),
) -> None:
    """Serve the update flow on its schedule, in the foreground (Ctrl-C stops)."""
    from okr_pipeline.flows.runner import serve_flow

    settings = _settings(project)
    console.print(
        f"Serving '{name}' on '{cron}' for {project.resolve()} "
        f"(store {mask_url(settings.resolved_store_url())}); Ctrl-C stops."
    )
    serve_flow(project.resolve(), cron=cron, name=name, console=console)


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Folder to create the demo project in.")] = Path(
        "okr-demo"
    ),
    port: Annotated[int, typer.Option(help="Port of the demo analytics API.")] = 8765,
) -> None:
    """Create a demo project (warehouse, analytics API, OKR files), run it and show the status."""
    from okr_pipeline.demo.project import run_demo

    run_demo(directory, port=port, console=console)


@app.command("demo-api")
def demo_api(
    directory: Annotated[Path, typer.Argument(help="The demo project folder.")] = Path("okr-demo"),
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 8765,
) -> None:
    """Keep the demo's analytics API running, for later 'okr run's in the demo project."""
    from okr_pipeline.demo.analytics_api import serve_forever

    console.print(f"Demo analytics API on http://127.0.0.1:{port} (Ctrl-C stops).")
    serve_forever(directory, port)


@db_app.command("upgrade")
def db_upgrade(project: ProjectOpt = Path(".")) -> None:
    """Create or migrate the store's tables to the current version."""
    from okr_pipeline.okr_store.db import current_revision, make_engine, upgrade

    settings = _settings(project)
    engine = make_engine(settings.resolved_store_url())
    try:
        upgrade(engine)
        revision = current_revision(engine)
    finally:
        engine.dispose()
    console.print(
        f"Store {mask_url(settings.resolved_store_url())} is at revision {revision}.",
        highlight=False,
    )


def main() -> None:
    """Entry point of the ``okr`` console script: one handler for every error."""
    from okr_pipeline.flows.temporary_api import start_temporary_api

    try:
        # A flow command with no Prefect API configured gets a temporary server that dies
        # with this process; started now (Prefect not imported yet), it boots meanwhile.
        start_temporary_api(sys.argv[1:])
        # Without standalone mode click returns the exit code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else ExitCode.OK)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("Aborted.")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into messages
        _report(exc)


def _report(exc: Exception) -> NoReturn:
    if isinstance(exc, TyperException):  # a wrong command line: usage and the problem
        if type(exc).__name__ != "NoArgsIsHelpError":  # the help is already on screen
            exc.show()  # type: ignore[attr-defined]
        sys.exit(ExitCode.USAGE)
    if _state["debug"]:
        err_console.print_exception()
    from okr_pipeline.flows.temporary_api import temporary_api

    server = temporary_api()
    stopped = server.problem() if server is not None else None
    if stopped is not None and not isinstance(exc, OkrError):  # what failed was the server
        err_console.print(f"[red]Error:[/red] {escape(stopped)}", highlight=False, soft_wrap=True)
        sys.exit(ExitCode.USER_ERROR)
    if isinstance(exc, DefinitionError):
        print_problems(exc.problems)
        err_console.print(
            f"[red]Error:[/red] {len(exc.problems)} problem(s) in the OKR files; "
            "run 'okr validate' after fixing them.",
            highlight=False,
        )
        sys.exit(ExitCode.USER_ERROR)
    if isinstance(exc, RoutingError) and len(exc.problems) > 1:
        print_problems(exc.problems)
        err_console.print(
            f"[red]Error:[/red] {len(exc.problems)} problem(s) in the alert routing file.",
            highlight=False,
        )
        sys.exit(ExitCode.USER_ERROR)
    if isinstance(exc, (ConfigError, OkrError)):
        err_console.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(ExitCode.USER_ERROR)
    message = str(exc)
    if len(message) > 500:
        message = message[:500] + "…"
    err_console.print(
        f"[red]Error:[/red] unexpected {type(exc).__name__}: {escape(message)}. "
        "Run again with --debug and report it.",
        highlight=False,
        soft_wrap=True,
    )
    sys.exit(ExitCode.INTERNAL)
