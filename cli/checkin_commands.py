"""``okr checkin`` and ``okr note``: a value for a manual KR, or a note on any KR, by hand.

Both write through :mod:`okr_pipeline.run.checkin` (the dashboard's form does too), which
checks everything before it writes; a check-in is scored at once by the Prefect-free run,
so these commands never start Prefect.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from okr_pipeline.cli.app import ProjectOpt, console, parse_time, settings_of

KrArg = Annotated[str, typer.Argument(help="The KR: objective/kr, or its id alone where unique.")]
CheckinAsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="The time it describes (ISO 8601, UTC if no zone); default now. Within the "
        "KR's cycle.",
    ),
]
AuthorOpt = Annotated[
    str | None,
    typer.Option(
        "--author",
        envvar="OKR_AUTHOR",
        show_envvar=True,
        help="Who enters it (default: $OKR_AUTHOR, else your login name).",
    ),
]


def _author(given: str | None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return ""  # refused with the message that says how to give one


def _time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def checkin(
    kr: KrArg,
    value: Annotated[str, typer.Argument(help="The value, e.g. 42 or 37.5; kept exactly.")],
    note: Annotated[
        str | None, typer.Option("--note", help="Why, or what the value is based on.")
    ] = None,
    as_of: CheckinAsOfOpt = None,
    author: AuthorOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Record a value for a manual KR (type: manual) and score it at once."""
    from okr_pipeline.run.checkin import record_checkin

    settings = settings_of(project)
    result = record_checkin(
        settings,
        kr,
        value,
        author=_author(author),
        note=note,
        as_of=parse_time(as_of),
    )
    console.print(
        f"[green]✓[/green] {escape(result.ref)}: {result.value} checked in as of "
        f"{_time(result.as_of)} by {escape(result.author)} (run {result.run_id}).",
        highlight=False,
        soft_wrap=True,
    )
    change = (
        result.status
        if result.previous_status in (None, result.status)
        else f"{result.previous_status} → {result.status}"
    )
    score = "" if result.score is None else f", score {result.score:.2f}"
    console.print(
        f"  {escape(change)}{score}: {escape(result.reason)}", highlight=False, soft_wrap=True
    )


def note(
    kr: KrArg,
    text: Annotated[str, typer.Argument(help="The note, e.g. 'campaign paused this week'.")],
    as_of: CheckinAsOfOpt = None,
    author: AuthorOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Add a note to any KR, measured or manual (context shown beside its history)."""
    from okr_pipeline.run.checkin import add_note

    settings = settings_of(project)
    result = add_note(settings, kr, text, author=_author(author), as_of=parse_time(as_of))
    console.print(
        f"[green]✓[/green] Note added to {escape(result.ref)} as of {_time(result.as_of)} "
        f"by {escape(result.author)}.",
        highlight=False,
        soft_wrap=True,
    )
