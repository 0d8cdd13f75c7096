"""The ``okr`` command line.

Every user mistake ends as one red line ``Error: ...`` and a documented exit code; the
traceback is shown only with ``--debug``. Prefect is imported only by the commands that run
flows, so that ``okr validate`` and ``okr status`` answer at once.

The commands live in modules by what they do; here they are registered, in the order
``okr --help`` lists them, and the one error handler turns exceptions into messages.
"""

from __future__ import annotations

import gc
import sys
from typing import NoReturn

import typer
from rich.markup import escape
from typer.exceptions import TyperException

from okr_pipeline.cli import (
    alert_commands,
    checkin_commands,
    connector_commands,
    history_commands,
    init_commands,
    project_commands,
    report_commands,
    run_commands,
    source_commands,
    store_commands,
    ui_commands,
)
from okr_pipeline.cli.app import (
    ExitCode,
    app,
    db_app,
    err_console,
    print_problems,
    reader_gone,
    state,
)
from okr_pipeline.okr_core.errors import ConfigError, DefinitionError, OkrError
from okr_pipeline.okr_core.words import plural

for command in (
    init_commands.init,
    project_commands.validate,
    project_commands.schema,
    run_commands.run,
    run_commands.backfill,
    checkin_commands.checkin,
    checkin_commands.note,
    store_commands.runs,
    store_commands.status,
    history_commands.history,
    history_commands.export,
    alert_commands.silence,
    alert_commands.silences,
    alert_commands.unsilence,
    alert_commands.alerts,
    store_commands.explain,
    project_commands.connectors,
    project_commands.serve,
    project_commands.demo,
):
    app.command()(command)
app.command("demo-api")(project_commands.demo_api)
db_app.command("upgrade")(project_commands.db_upgrade)
app.add_typer(source_commands.source_app, name="source")
app.add_typer(connector_commands.connector_app, name="connector")
app.add_typer(ui_commands.ui_app, name="ui")
app.command()(report_commands.report)


def main() -> None:
    """Entry point of the ``okr`` console script: one handler for every error."""
    # What was imported lives as long as the process: the collector need not scan it again,
    # and a command makes objects by the ten thousand (rows, lines) and keeps most of them,
    # so its scans every 700 allocations cost a tenth of 'okr status' over 10,000 KRs.
    gc.freeze()
    gc.set_threshold(max(50_000, gc.get_threshold()[0]), *gc.get_threshold()[1:])
    try:
        # A flow command with no Prefect API configured gets a temporary server that dies
        # with this process; started now (Prefect not imported yet), it boots meanwhile.
        # Only a command line with --prefect may need one: the others (okr status) do not
        # import the module (and the HTTP client it brings).
        if "--prefect" in sys.argv[1:]:
            from okr_pipeline.flows.temporary_api import start_temporary_api

            start_temporary_api(sys.argv[1:])
        # Without standalone mode click returns the exit code instead of exiting.
        code = app(standalone_mode=False)
        sys.stdout.flush()  # a reader that went away (okr status | head -2) shows here
        sys.exit(code if isinstance(code, int) else ExitCode.OK)
    except BrokenPipeError:
        reader_gone()
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
    if state["debug"]:
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
            f"[red]Error:[/red] {plural(len(exc.problems), 'problem')} in the OKR files; "
            "run 'okr validate' after fixing them.",
            highlight=False,
        )
        sys.exit(ExitCode.USER_ERROR)
    from okr_pipeline.okr_core.alerting.routing import RoutingError  # YAML readers: not at start

    if isinstance(exc, RoutingError) and len(exc.problems) > 1:
        print_problems(exc.problems)
        err_console.print(
            f"[red]Error:[/red] {plural(len(exc.problems), 'problem')} in the alert routing file.",
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
