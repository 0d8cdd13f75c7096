"""Prefect servers that okr starts, and that never outlive it.

Two cases, both when the user configured no Prefect API:

* ``okr run``, ``okr demo``, ``okr backfill``: a temporary API server (Prefect's own app,
  served the way Prefect serves its temporary server) for the one command.
  :func:`start_temporary_api` starts it before Prefect is imported and points
  ``PREFECT_API_URL`` at it, so Prefect never starts one of its own.
* ``okr serve``: :func:`local_prefect_server` runs ``prefect server start`` (a temporary
  server cannot run schedules) for as long as it serves.

Either server is started with a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``):
when okr ends in any way, SIGKILL included, the kernel stops the server, so no server is
left listening, re-parented to PID 1. Each runs in a process group of its own, so a Ctrl-C
reaches okr only, which then stops it in order (at exit, after Prefect's own log and event
workers have sent what they hold).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import importlib.util
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from okr_core.errors import ConfigError
from okr_core.settings import mask_url

STARTUP_SECONDS = 120

#: Commands that run the flow in this process and need a Prefect API for it.
FLOW_COMMANDS = frozenset({"run", "demo", "backfill"})

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

#: How Prefect serves its own temporary server (prefect.server.api.server), minus the port.
_UVICORN_ARGS = (
    "--factory",
    "prefect.server.api.server:create_app",
    "--log-level",
    "error",
    "--lifespan",
    "on",
)


def configured_api_url() -> str | None:
    """The Prefect API URL from the environment or the active Prefect profile, if any."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when this process dies.

    Linux delivers the signal when the *thread* that started the child ends, so start
    children from the main thread. Elsewhere (no ``prctl``) returns None.

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


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
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
        process_group=0,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(api_url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(
                    f"could not start a local Prefect server on port {port}; start one with "
                    "'prefect server start' and set PREFECT_API_URL"
                )
            time.sleep(0.5)
        yield api_url
    finally:
        _stop(server, timeout=30)


class TemporaryApi:
    """A temporary Prefect API server started by :func:`start_temporary_api`.

    Attributes:
        api_url: Its API URL (``http://127.0.0.1:PORT/api``).
        process: The server process.
    """

    def __init__(self, api_url: str, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self.api_url = api_url
        self.process = process
        self._log = log

    def problem(self) -> str | None:
        """Why the server stopped, when it stopped before okr did; None while it runs."""
        code = self.process.poll()
        if code is None:
            return None
        self._log.seek(0)
        lines = [
            line.strip()
            for line in self._log.read().decode("utf-8", "replace").splitlines()
            if line.strip()
        ]
        # The exception line of the last traceback says why; else the last line printed.
        errors = [line for line in lines if _EXCEPTION_LINE.match(line)]
        last = errors[-1] if errors else (lines[-1] if lines else "")
        detail = f": {mask_url(last)[:300]}" if last else ""
        return (
            f"the temporary Prefect server stopped (exit code {code}){detail}; check that "
            "PREFECT_HOME (default ~/.prefect) is writable, or run a Prefect server "
            "('prefect server start') and set PREFECT_API_URL"
        )

    def stop(self) -> None:
        """Stop the server (also done at exit)."""
        _stop(self.process)
        self._log.close()


_temporary: list[TemporaryApi] = []

_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")


def temporary_api() -> TemporaryApi | None:
    """The temporary API server this process started, if any."""
    return _temporary[0] if _temporary else None


def start_temporary_api(argv: Sequence[str]) -> TemporaryApi | None:
    """Start a temporary Prefect API for a flow command, unless one is configured.

    Call before Prefect is imported, from the main thread. Returns at once: the server
    starts while okr goes on; it listens on a socket bound here, so requests sent before it
    is ready wait in the socket's queue rather than fail. Sets ``PREFECT_API_URL`` in this
    process's environment, and stops the server at exit.

    Args:
        argv: The command line after the program name (``sys.argv[1:]``).

    Returns:
        The server, or None: not a flow command, an API already configured, Prefect already
        imported (settings are read at import), or not the main thread.
    """
    if _temporary or _command(argv) not in FLOW_COMMANDS or "--help" in argv:
        return None
    if "prefect" in sys.modules or threading.current_thread() is not threading.main_thread():
        return None
    if _api_configured_elsewhere():
        return None
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        return None
    app_dir = str(Path(spec.origin).parent.parent)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = int(listener.getsockname()[1])
    # Kept open for the server's life (closed by TemporaryApi.stop): its errors, if any.
    log = tempfile.TemporaryFile(prefix="okr-prefect-server-")  # noqa: SIM115
    env = {
        **os.environ,
        # What Prefect sets for its own temporary server: no UI, no scheduler services.
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    fd = str(listener.fileno())
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, *_UVICORN_ARGS, "--fd", fd],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(listener.fileno(),),
            preexec_fn=die_with_parent(),  # only prctl: see die_with_parent
            process_group=0,
        )
    finally:
        # Only the server holds the socket now: if it dies, clients are refused, not hung.
        listener.close()
    server = TemporaryApi(f"http://127.0.0.1:{port}/api", process, log)
    _temporary.append(server)
    os.environ["PREFECT_API_URL"] = server.api_url
    # Registered before Prefect is imported, so it runs after Prefect's own exit handlers
    # (atexit is last in, first out), which still send logs and events to the server.
    atexit.register(server.stop)
    return server


def _command(argv: Sequence[str]) -> str | None:
    # The only option before the command is the flag --debug (no value), so the first
    # word that is not an option is the command.
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _api_configured_elsewhere() -> bool:
    """Whether a Prefect API may be configured anywhere Prefect reads settings from.

    Prefect is not imported yet (that is the point), so its sources are read here: the
    environment, the active profile, and ``.env``, ``prefect.toml``, ``pyproject.toml`` in
    the current folder. A file that merely mentions the API URL counts: starting no
    server of our own is the safe way to be wrong (Prefect then does what it always did).
    """
    if os.environ.get("PREFECT_API_URL"):
        return True
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")
    try:
        data = tomllib.loads(profiles.expanduser().read_text())
    except FileNotFoundError:
        data = {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return True
    active = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    profile = data.get("profiles", {}).get(active, {})
    if not isinstance(profile, dict) or profile.get("PREFECT_API_URL"):
        return True
    for name in (".env", "prefect.toml", "pyproject.toml"):
        try:
            text = Path(name).read_text(errors="replace")
        except OSError:
            continue
        if "PREFECT_API_URL" in text or re.search(r"^\s*\[(tool\.prefect\.)?api\]", text, re.M):
            return True
    return False


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
