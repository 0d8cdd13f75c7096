"""Commands about the project: validate, schema, connectors, serve, the demo and the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from okr_pipeline.cli.app import (
    PrefectOpt,
    ProjectOpt,
    console,
    fail,
    print_problems,
    settings_of,
)
from okr_pipeline.cli.tables import Cell, Column, Step, print_listing
from okr_pipeline.okr_core.settings import mask_url
from okr_pipeline.okr_core.words import plural


def validate(
    path: Annotated[
        Path | None, typer.Argument(help="OKR file or folder (default: the project's okrs/).")
    ] = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Check OKR files and list every problem, with file, place and line.

    One file of the project is checked against the project (a parent or a formula may name
    another file's objective or KR); only its own problems are listed.
    """
    from okr_pipeline.cli.validation import validate_okr_files

    settings = settings_of(project)
    found = validate_okr_files(settings, path)
    if found.problems:
        print_problems(found.problems)
        also = (
            f" ({plural(found.elsewhere, 'problem')} in the project's other files may cause some: "
            "'okr validate' lists them)"
            if found.elsewhere
            else ""
        )
        fail(f"{plural(len(found.problems), 'problem')} in {found.where}{also}")
    from okr_pipeline.run.preflight import load_alert_routing

    routing = load_alert_routing(settings)
    for warning in found.warnings:
        console.print(f"[yellow]![/yellow] {escape(str(warning))}", highlight=False, soft_wrap=True)
    if found.elsewhere:
        # Its references could not all be resolved while other files are broken.
        console.print(
            f"[green]✓[/green] {path}: no problem of its own; "
            f"{plural(found.elsewhere, 'problem')} in the project's other files "
            "('okr validate' lists them).",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(
        f"[green]✓[/green] {plural(found.files, 'file')}, "
        f"{plural(found.objectives, 'objective')}, "
        f"{plural(found.key_results, 'key result')}: valid.",
        highlight=False,
    )
    if settings.resolved_alerts_path().exists():
        console.print(
            f"[green]✓[/green] {settings.resolved_alerts_path().name}: "
            f"{plural(len(routing.routes), 'route')} and the default route: valid."
        )


def schema() -> None:
    """Print the JSON Schema of the OKR file format (for editors)."""
    from okr_pipeline.cli.schema import okr_file_schema

    console.print_json(json.dumps(okr_file_schema()))


#: ``okr connectors``: the package column goes first when the table is too wide.
CONNECTOR_COLUMNS = (
    Column("type"),
    Column("what it reads", wrap=True, min_width=16),
    Column("auth", wrap=True, min_width=12),
    Column("tested against", wrap=True, min_width=10),
    Column("package", wrap=True, min_width=12),
)
CONNECTOR_STEPS: tuple[Step, ...] = (("package", "drop"),)


def connectors(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (a list of connectors) instead of a table.")
    ] = False,
) -> None:
    """List the installed metric source connectors."""
    from okr_pipeline.cli.json_output import connector_json, listing
    from okr_pipeline.connectors.registry import describe_sources

    rows = describe_sources()
    if as_json:
        sys.stdout.write(listing(connector_json(row) for row in rows) + "\n")
        return
    cells: list[list[Cell]] = [
        [row.type, row.reads or row.doc, row.authentication, row.tested_against, row.distribution]
        for row in rows
    ]
    print_listing(
        console, CONNECTOR_COLUMNS, cells, steps=CONNECTOR_STEPS, title="Installed connectors"
    )


def serve(
    cron: Annotated[
        str, typer.Option(help="How often the flow runs; each run measures the KRs that are due.")
    ] = "*/15 * * * *",
    name: Annotated[
        str,
        typer.Option(
            help="Deployment name; never that of a worker deployment ('okr-update' of "
            "prefect.yaml)."
        ),
    ] = "okr-serve",
    ui: Annotated[
        bool,
        typer.Option(
            "--ui/--no-ui",
            help="Serve the dashboard beside the schedule (address: OKR_UI__HOST, OKR_UI__PORT).",
        ),
    ] = True,
    project: ProjectOpt = Path("."),
) -> None:
    """Serve the update flow on its schedule, and the dashboard, in the foreground (Ctrl-C)."""
    from okr_pipeline.flows.serve import serve_flow

    settings = settings_of(project)
    console.print(
        f"Serving '{name}' on '{cron}' for {project.resolve()} "
        f"(store {mask_url(settings.resolved_store_url())}); Ctrl-C stops."
    )
    serve_flow(project.resolve(), cron=cron, name=name, console=console, ui=ui)


def demo(
    directory: Annotated[Path, typer.Argument(help="Folder to create the demo project in.")] = Path(
        "okr-demo"
    ),
    port: Annotated[
        int | None,
        typer.Option(help="Port of the demo analytics API (default: 8765, or a free one)."),
    ] = None,
    prefect: PrefectOpt = False,
) -> None:
    """Create a demo project (warehouse, analytics API, OKR files), run it and show the status.

    The API's port is taken before anything is written: a busy --port leaves nothing behind,
    and a new demo that fails half-way is removed again. Its runs go to Prefect as 'okr
    run's do: when a Prefect API is configured, or with --prefect.
    """
    from okr_pipeline.cli.progress import work_progress
    from okr_pipeline.cli.run_commands import choose_runner, say_without_prefect

    runner = choose_runner(None, prefect)
    with work_progress(console) as progress:
        progress.step("starting")
        from okr_pipeline.cli.measure import run_once
        from okr_pipeline.demo.project import demo_running, next_steps

        with (
            progress.runs_inside(),
            demo_running(
                directory,
                port=port,
                console=progress.console,
                progress=progress.demo,
                update=runner,  # None: the Prefect flow (Prefect imported: seconds)
            ) as project,
        ):
            progress.step("measuring now")
            run_once(
                project,
                kr=[],
                as_of=None,
                dry_run=False,
                all_krs=True,
                console=console,
                progress=progress,
                update=runner,
            )
    say_without_prefect(runner)
    ui_port = settings_of(project).ui.port
    console.print(next_steps(directory, ui_port=ui_port or 8400), highlight=False)


def demo_api(
    directory: Annotated[Path, typer.Argument(help="The demo project folder.")] = Path("okr-demo"),
    port: Annotated[
        int | None,
        typer.Option(help="Port to listen on (127.0.0.1; default: the one the demo's .env names)."),
    ] = None,
) -> None:
    """Keep the demo's analytics API running, for later 'okr run's in the demo project."""
    from okr_pipeline.demo.analytics_api import serve_forever

    shown = f"port {port}" if port is not None else "the port its .env names"
    console.print(f"Demo analytics API on 127.0.0.1, {shown} (Ctrl-C stops).", highlight=False)
    serve_forever(directory, port)


def db_upgrade(project: ProjectOpt = Path(".")) -> None:
    """Create or migrate the store's tables to the current version."""
    from okr_pipeline.okr_store.db import current_revision, make_engine, upgrade

    settings = settings_of(project)
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
