"""Serve the update flow on a schedule, in the foreground (``okr serve``)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from rich.console import Console

from okr_pipeline.flows.update import update_key_results


def serve_flow(project: Path, *, cron: str, name: str, console: Console) -> None:
    """Serve the flow in the foreground; a run never starts while the previous one runs.

    Uses the configured Prefect API, or starts a local Prefect server for the duration.
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
        _serve(project, cron=cron, name=name)


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
