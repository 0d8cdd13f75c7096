"""Prefect servers that okr starts never outlive it; flow runs a killed okr left Running.

* ``okr serve``: :func:`local_prefect_server` runs ``prefect server start`` (Prefect's
  temporary server cannot run schedules) for as long as it serves, when no Prefect API is
  configured. (``okr run``'s temporary server: :mod:`flows.temporary_api`.)
* Both start their server with :func:`die_with_parent`, a parent-death signal (Linux
  ``prctl(PR_SET_PDEATHSIG)``): when okr ends in any way, SIGKILL included, the kernel stops
  the server, so no server is left listening, re-parented to PID 1.
* :func:`mark_orphaned_flow_runs`: the next run sets the flow runs of a killed okr, which
  nobody could end, to Crashed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from okr_pipeline.okr_core.errors import ConfigError

STARTUP_SECONDS = 120

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def configured_api_url() -> str | None:
    """The Prefect API URL from the environment or the active Prefect profile, if any."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(api_url: str, timeout: float = 2) -> bool:
    """Whether the Prefect API at ``api_url`` answers its health check within ``timeout``."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when this process dies.

    Linux delivers the signal when the *thread* that started the child ends, so start
    children from a thread that lives as long as the process (the main thread, or one that
    waits for the child). Elsewhere (no ``prctl``) returns None.

    Returns:
        The function to pass as ``subprocess.Popen(preexec_fn=...)``, or None.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl  # looked up now: the child between fork and exec should do little
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Ask ``process`` to stop (SIGTERM); kill it if it has not within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def local_prefect_server(port: int | None = None) -> Iterator[str]:
    """Run ``prefect server start`` on 127.0.0.1 for the duration of the block.

    The server dies with this process, even when it is killed (see the module's notes).

    Args:
        port: The port to listen on; a free one by default.

    Yields:
        The server's API URL (``http://127.0.0.1:PORT/api``).

    Raises:
        ConfigError: the server did not answer within two minutes.
    """
    port = port or _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent(),  # only prctl: see die_with_parent
        process_group=0 if os.name == "posix" else None,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not healthy(api_url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(
                    f"could not start a local Prefect server on port {port}; start one with "
                    "'prefect server start' and set PREFECT_API_URL"
                )
            time.sleep(0.5)
        yield api_url
    finally:
        stop_process(server, timeout=30)


def mark_orphaned_flow_runs(flow_run_ids: list[str]) -> None:
    """Set to Crashed the Prefect flow runs left Running (or Pending) by a killed okr.

    A run killed with SIGKILL cannot tell Prefect it ended; the next run finds its row in
    the store still ``running`` and passes its flow run ids here. Runs the server does not
    know (a temporary server's database, a different server) and runs already in a final
    state are left alone; a failure to reach Prefect is logged, never raised: this is
    housekeeping and must not fail the run that does it.

    Args:
        flow_run_ids: Prefect flow run ids (UUIDs as strings); others are ignored.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.states import Crashed

    ids = [run_id for run_id in (_uuid(text) for text in flow_run_ids) if run_id is not None]
    if not ids:
        return
    try:
        with get_client(sync_client=True) as client:
            for run_id in ids:
                try:
                    flow_run = client.read_flow_run(run_id)
                except ObjectNotFound:
                    continue
                state = flow_run.state
                if state is None or not (state.is_running() or state.is_pending()):
                    continue
                client.set_flow_run_state(
                    run_id,
                    Crashed(message="The okr process running this flow run was killed."),
                    force=True,
                )
    except (OSError, PrefectHTTPStatusError, httpx_errors()) as exc:
        logging.getLogger(__name__).warning(
            "could not mark orphaned Prefect flow runs as crashed: %s", exc
        )


def httpx_errors() -> type[Exception]:
    """The base class of httpx's transport errors (httpx comes with Prefect)."""
    import httpx

    return httpx.HTTPError


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        return None
