"""``okr init``: a new project folder that validates and runs at once."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from okr_pipeline.cli.app import console
from okr_pipeline.cli.init_files import project_files

__all__ = ["init", "write_project"]


def write_project(directory: Path, today: date) -> list[Path]:
    """Write a new project's files into ``directory``, or nothing when any of them exists.

    Args:
        directory: The project folder; made when missing.
        today: The day the project is made (its example cycle is this quarter).

    Returns:
        The files written, in order.

    Raises:
        ConfigError: ``directory`` is a file, or one of the files exists already (all named).
    """
    from okr_pipeline.okr_core.errors import ConfigError

    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a folder")
    files = project_files(today, directory.resolve())
    # okrs/ counts as there when it holds any file: the example would sit beside your OKRs.
    taken = [name for name in files if (directory / name).exists()]
    okrs = directory / "okrs"
    if okrs.is_dir() and any(okrs.iterdir()) and "okrs/okrs.yaml" not in taken:
        taken.insert(0, "okrs/")
    if taken:
        raise ConfigError(
            f"{'this folder' if directory == Path('.') else directory} already has "
            f"{', '.join(taken)}: nothing written "
            "(move them away, or use another folder)"
        )
    written = []
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder to make the project in (made when missing).")
    ] = Path("."),
) -> None:
    """Start a project: an example OKR file, okr.toml, .env.example, alerts.yaml, prefect.yaml.

    Writes nothing when any of these files exists already. The project validates and runs
    at once: its example KRs take check-ins and need no connection.
    """
    written = write_project(directory, date.today())
    console.print(
        f"Created a project in {escape(str(directory))}/: "
        + ", ".join(escape(str(path.relative_to(directory))) for path in written)
        + ". Next:",
        highlight=False,
        soft_wrap=True,
    )
    here = [] if directory == Path(".") else [f"cd {directory}"]
    for step in (
        *here,
        "okr validate                       # check okrs/okrs.yaml",
        "okr run --all                      # measure, score and store",
        "okr checkin first-objective/teams-onboarded 1   # a value for a manual KR",
        "okr ui                             # the dashboard at http://127.0.0.1:8400",
        "cp .env.example .env               # connections and secrets, for sql and other KRs",
        "okr serve                          # run on a schedule (or: prefect deploy --all)",
    ):
        console.print(f"  {escape(step)}", highlight=False, soft_wrap=True)
