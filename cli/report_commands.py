"""``okr report``: the shareable report of a cycle, one self-contained HTML file (and a PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from okr_pipeline.cli.app import ProjectOpt, console, fail, settings_of


def report(
    cycle: Annotated[
        str | None,
        typer.Option("--cycle", help="The cycle (default: the one running now, else the newest)."),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective", help="Only this objective and the objectives under it (a team's part)."
        ),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Only the KRs of objectives this person owns (e-mail)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder to write into (default: the report_dir setting, else the current folder).",
        ),
    ] = None,
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Also print a PDF with headless Chromium.")
    ] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Write the overview and every KR's chart and history as one HTML file.

    The file holds its styles and charts (no network): it opens from disk or as an
    e-mail attachment. It is named okr-report-<cycle>-<date>.html (with --objective or
    --owner, okr-report-<cycle>-<objective or owner>-<date>.html).
    """
    from okr_pipeline.cli.reading import open_store_to_read
    from okr_pipeline.web.report import find_chromium, write_report

    settings = settings_of(project)
    if pdf:
        find_chromium()  # no Chromium: say so before reading anything
    if out is not None and out.exists() and not out.is_dir():
        fail(f"--out {out} is a file, not a folder")
    store = open_store_to_read(settings)
    try:
        files = write_report(
            settings,
            cycle=cycle,
            objective=objective,
            owner=owner,
            out_dir=out,
            pdf=pdf,
            store=store,
        )
    finally:
        store.close()
    console.print(f"Report written to {files.html}", highlight=False, soft_wrap=True)
    if files.pdf is not None:
        console.print(f"PDF written to {files.pdf}", highlight=False, soft_wrap=True)
