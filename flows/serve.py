"""Serve the update flow on a schedule, in the foreground (``okr serve``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from rich.console import Console

from okr_pipeline.flows.update import update_key_results


def serve_flow(project: Path, *, cron: str, name: str, console: Console, ui: bool = True) -> None:
    """Serve the flow in the foreground; a run never starts while the previous one runs.

    Uses the configured Prefect API, or starts a local Prefect server for the duration.
    With ``ui``, the dashboard (``okr ui``) is served beside it, linking runs to the
    Prefect UI.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from okr_pipeline.flows.prefect_server import configured_api_url, local_prefect_server

    with contextlib.ExitStack() as stack:
        api_url = configured_api_url()
        if api_url is None:
            console.print("No PREFECT_API_URL set: starting a local Prefect server...")
            api_url = stack.enter_context(local_prefect_server())
            console.print(
                f"Prefect server at {api_url.removesuffix('/api')} (its UI shows the runs)."
            )
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        if ui:
            stack.enter_context(_dashboard(project, api_url, console))
        _serve(project, cron=cron, name=name)


@contextlib.contextmanager
def _dashboard(project: Path, api_url: str, console: Console) -> Iterator[None]:
    """The dashboard in a background thread for as long as the schedule is served."""
    from okr_pipeline.okr_core.settings import load_settings
    from okr_pipeline.web.app import create_app
    from okr_pipeline.web.server import DashboardServer

    settings = load_settings(project)
    app = create_app(settings, prefect_ui_url=api_url.rstrip("/").removesuffix("/api"))
    server = DashboardServer(app, settings.ui.host, settings.ui.port)
    server.start(on_error=lambda exc: console.print(f"[red]The dashboard stopped:[/red] {exc}"))
    console.print(
        f"Dashboard at {server.url}/ (--no-ui: without it).", highlight=False, soft_wrap=True
    )
    try:
        yield
    finally:
        server.stop()


def _serve(project: Path, *, cron: str, name: str) -> None:
    update_key_results.serve(
        name=name,
        cron=cron,
        parameters={"project_dir": str(project)},
        # One run at a time; a run scheduled while the last one still runs is dropped, not
        # queued, so that a slow source cannot build up a backlog.
        global_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        description="Measure the key results that are due, score them and store the results.",
    )
