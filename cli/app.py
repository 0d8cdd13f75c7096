"""The ``okr`` application: its options, consoles, exit codes and error line.

Every command module registers with :data:`app` (see :mod:`okr_pipeline.cli.main`); what
they share lives here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from okr_pipeline.flows.prefect_env import apply_quiet_defaults
from okr_pipeline.okr_core.settings import Settings, load_settings


class ExitCode(IntEnum):
    """Exit codes of ``okr``."""

    OK = 0
    USER_ERROR = 1  # a file, a setting or an argument needs fixing
    USAGE = 2  # the command line itself is wrong (Typer's own code)
    SOURCES_FAILED = 3  # the run completed, but some KRs' sources failed
    NO_STORE = 4  # a reading command found no store yet (or one that needs 'okr db upgrade')
    INTERNAL = 70  # a bug: please report it with the --debug output


def _no_type_beside_flags() -> None:
    """Show no ``<bool>`` beside a flag in ``--help`` (``--json <bool>``, ``--help <bool>``).

    Typer's help prints every option's type, flags included, as if ``--json`` took a value;
    a flag takes none, so it shows none. Options that take a value keep theirs.
    """
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_no_type_beside_flags()


def reader_gone() -> NoReturn:
    """The output's reader closed the pipe (``okr status | head -2``): stop quietly, exit 0.

    Standard output is pointed at /dev/null first, so that Python's own flush at exit does
    not fail on the closed pipe again and print a traceback.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(ExitCode.OK)


class OkrConsole(Console):
    """Rich's console, for which a reader that stops early is no error.

    Rich exits with 1 when the pipe it writes to closes; ``okr status | head -2`` got what
    it asked for, so ``okr`` exits with 0, like ``cat``.
    """

    def on_broken_pipe(self) -> None:
        """Stop quietly: see :func:`reader_gone`."""
        self.quiet = True
        reader_gone()


console = OkrConsole()


err_console = OkrConsole(stderr=True)


app = typer.Typer(
    name="okr",
    help="Key results that update themselves: validate OKR files, measure, score and report.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (README: Commands)
    pretty_exceptions_enable=False,
)


db_app = typer.Typer(help="Manage the store's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


#: Set by the --debug option; read by the error handler.
state = {"debug": False}


ProjectOpt = Annotated[
    Path, typer.Option("--project", "-p", help="Project folder (holds okrs/, .env, okr.toml).")
]


AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Evaluate as of this ISO 8601 time (UTC if no zone).")
]


KrOpt = Annotated[
    list[str] | None,
    typer.Option("--kr", help="Only this KR (objective/kr or a unique id); repeatable."),
]


PrefectOpt = Annotated[
    bool,
    typer.Option(
        "--prefect",
        help="Run as a Prefect flow even when no Prefect API is configured, on a temporary "
        "Prefect server (takes seconds). With PREFECT_API_URL (or a Prefect profile's) set, "
        "runs always go to that server.",
    ),
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
    state["debug"] = debug
    # Set before Prefect is imported (commands import it lazily): run and demo print their
    # own summary, so Prefect's log lines stay off the terminal unless --debug is given.
    apply_quiet_defaults(
        console_logs=debug or ctx.invoked_subcommand not in ("run", "demo", "backfill")
    )


def settings_of(project: Path) -> Settings:
    """The project's settings; a missing project folder is the user's error."""
    if not project.is_dir():
        fail(f"project folder '{project}' does not exist")
    return load_settings(project)


def parse_time(text: str | None, option: str = "--as-of") -> datetime | None:
    """An ISO 8601 date or time from the command line (UTC when it has no zone)."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} '{text}' is not an ISO 8601 date or time (e.g. 2026-11-24T09:00:00Z)")
    return when if when.tzinfo else when.replace(tzinfo=UTC)
