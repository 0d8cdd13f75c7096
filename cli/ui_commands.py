"""``okr ui``: the dashboard in the foreground; ``okr ui hash``: a hash for the write token.

The dashboard reads the store; it writes check-ins and notes only when a token or a user
is configured (``OKR_UI__TOKEN_HASH``, ``OKR_UI__USERS__<NAME>``), which hold hashes that
``okr ui hash`` makes. No Prefect is imported: the dashboard starts at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from okr_pipeline.cli.app import ProjectOpt, console, err_console, fail, settings_of

ui_app = typer.Typer(
    help="The dashboard: overview, KR pages with charts, runs, alerts, JSON API.",
    no_args_is_help=False,
    invoke_without_command=True,
)


def prefect_ui_url(explicit: str | None = None) -> str | None:
    """The Prefect UI's address for links to flow runs: given, PREFECT_UI_URL, or the API's."""
    if explicit:
        return explicit
    # Prefect's own settings, read as Prefect documents them, without importing Prefect.
    ui = os.environ.get("PREFECT_UI_URL")
    if ui:
        return ui
    api = os.environ.get("PREFECT_API_URL")
    return api.rstrip("/").removesuffix("/api") if api else None


@ui_app.callback()
def ui(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default 127.0.0.1, or OKR_UI__HOST)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port (default 8400, or OKR_UI__PORT); 0 picks a free one.", min=0, max=65535
        ),
    ] = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Serve the dashboard of the project's store in the foreground (Ctrl-C stops)."""
    if ctx.invoked_subcommand is not None:
        return
    from okr_pipeline.web.app import create_app
    from okr_pipeline.web.auth import writes_enabled
    from okr_pipeline.web.server import DashboardServer

    settings = settings_of(project)
    server = DashboardServer(
        create_app(settings, prefect_ui_url=prefect_ui_url()),
        settings.ui.host if host is None else host,
        settings.ui.port if port is None else port,
    )
    mode = (
        "check-ins allowed with the token or a user"
        if writes_enabled(settings.ui)
        else "read-only ('okr ui hash' shows how to allow check-ins)"
    )
    # soft_wrap: the URL stays on one line, whole, in any terminal width.
    console.print(
        f"Dashboard at {server.url}/ ({mode}); Ctrl-C stops.", highlight=False, soft_wrap=True
    )
    server.run()


@ui_app.command("hash")
def hash_command(
    user: Annotated[
        str | None,
        typer.Option(help="Hash a password for this user instead of the token."),
    ] = None,
) -> None:
    """Hash a token (or a user's password) for .env; reads it hidden, or from stdin."""
    from okr_pipeline.web.auth import hash_secret

    if user is not None and (not user or not user.replace("_", "").replace("-", "").isalnum()):
        fail(f"user name '{user}' must be letters, digits, '-' or '_'")
    what = f"password for {user}" if user else "token"
    if sys.stdin.isatty():
        secret = typer.prompt(f"The {what}", hide_input=True, confirmation_prompt=True)
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        fail(f"the {what} is empty")
    if len(secret) < 12:
        err_console.print(
            f"[yellow]![/yellow] the {what} is short ({len(secret)} characters); "
            "a long random one is safer, e.g. from "
            "'python -c \"import secrets; print(secrets.token_urlsafe())\"'.",
            highlight=False,
        )
    name = f"OKR_UI__USERS__{user.upper()}" if user else "OKR_UI__TOKEN_HASH"
    err_console.print(f"Put this line in the project's .env (it holds a hash, not the {what}):")
    sys.stdout.write(f"{name}={hash_secret(secret)}\n")
