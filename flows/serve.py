"""Serve the update flow on a schedule, in the foreground (``okr serve``)."""

from __future__ import annotations

import _thread
import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from rich.console import Console

from okr_pipeline.flows.update import update_key_results

SERVE_NAME = "okr-serve"
"""``okr serve``'s deployment: never ``okr-update``, the worker deployment of prefect.yaml."""


def serve_flow(project: Path, *, cron: str, name: str, console: Console, ui: bool = True) -> None:
    """Serve the flow in the foreground; a run never starts while the previous one runs.

    Uses the configured Prefect API, or starts a local Prefect server for the duration.
    With ``ui``, the dashboard (``okr ui``) is served beside it, linking runs to the
    Prefect UI.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from okr_pipeline.flows.prefect_server import configured_api_url, local_prefect_server

    with contextlib.ExitStack() as stack:
        # First, so that every thread and process started below inherits SIGINT blocked.
        stack.enter_context(_ctrl_c_to_serve_only())
        api_url = configured_api_url()
        local = api_url is None
        if api_url is None:
            console.print("No PREFECT_API_URL set: starting a local Prefect server...")
            api_url = stack.enter_context(local_prefect_server())
            console.print(
                f"Prefect server at {api_url.removesuffix('/api')} (its UI shows the runs)."
            )
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        if local:
            # Unwound before the server stops: no events websocket is left open for the
            # stopping server to close under it (websockets' ConnectionClosedError 1012).
            stack.callback(_drain_prefect_events)
        refuse_worker_deployment(name)
        if ui:
            stack.enter_context(_dashboard(project, api_url, console))
        _serve(project, cron=cron, name=name)


@contextlib.contextmanager
def _ctrl_c_to_serve_only() -> Iterator[None]:
    """Ctrl-C reaches ``okr serve`` only, not the flow-run processes it started.

    A terminal sends Ctrl-C to its whole process group, flow-run processes included: one
    that was starting died with a KeyboardInterrupt traceback. Here SIGINT is blocked in
    the thread that starts them, so they inherit it blocked and never see it, and a thread
    of ours waits for it and interrupts the main thread instead. Prefect's runner then
    stops its runs itself (they end Crashed, without a traceback); a second Ctrl-C
    terminates them at once.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):
        yield
        return
    done = threading.Event()

    def wait_for_ctrl_c() -> None:
        presses = 0
        while not done.is_set():
            if signal.sigtimedwait({signal.SIGINT}, 0.2) is None:
                continue
            presses += 1
            if presses == 1:
                _thread.interrupt_main()
                # The main thread may sleep in its event loop's select: a signal it does
                # not block ends the wait, and the interrupt is handled on the way out.
                signal.pthread_kill(main, signal.SIGUSR1)
            else:
                for child in multiprocessing.active_children():
                    child.terminate()

    main = threading.get_ident()
    before_usr1 = signal.signal(signal.SIGUSR1, lambda _signum, _frame: None)
    # The waiting thread is started with SIGINT blocked too: only sigtimedwait takes it.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    waiter = threading.Thread(target=wait_for_ctrl_c, name="okr-ctrl-c", daemon=True)
    waiter.start()
    try:
        yield
    finally:
        done.set()
        waiter.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        signal.signal(signal.SIGUSR1, before_usr1)


def _drain_prefect_events() -> None:
    """Send the events Prefect still holds and close its events client's connection."""
    from prefect.events.worker import EventsWorker

    try:
        EventsWorker.drain_all(timeout=5)
    except Exception as exc:  # noqa: BLE001 - shutting down: never a traceback for this
        logging.getLogger(__name__).debug("draining Prefect's events failed: %s", exc)


def refuse_worker_deployment(name: str) -> None:
    """Refuse to serve under the name of a deployment that runs on a work pool.

    Serving takes a deployment of the same name over (its work pool and schedule are
    replaced) and pauses it on exit: the worker deployment ``prefect deploy`` made from
    ``prefect.yaml`` would stop running.

    Args:
        name: The deployment name ``okr serve`` was asked to serve.

    Raises:
        ConfigError: a deployment of the flow with that name has a work pool.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from okr_pipeline.okr_core.errors import ConfigError

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(f"{update_key_results.name}/{name}")
        except ObjectNotFound:
            return
    if deployment.work_pool_name:
        raise ConfigError(
            f"deployment '{name}' runs on work pool '{deployment.work_pool_name}' (made by "
            f"'prefect deploy'); serving it would take it over and pause it: use another "
            f"--name (default {SERVE_NAME})"
        )


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
