"""The temporary Prefect API of ``okr run --prefect`` (and of ``demo`` and ``backfill``).

With no Prefect API configured, these commands run without Prefect (the plain steps of
:mod:`okr_pipeline.run.update`: starting a server costs seconds, a small run milliseconds);
:func:`prefect_api_configured` tells, without importing Prefect. With ``--prefect`` they
run the flow on a temporary Prefect server. Left to itself, Prefect would start a
temporary server of its own, which
outlives an okr killed with SIGKILL (re-parented to PID 1, still listening). So okr serves
Prefect's app itself, the way Prefect serves its temporary server, with a parent-death
signal (:func:`flows.prefect_server.die_with_parent`), in a process group of its own (a
Ctrl-C reaches okr only, which then stops it in order):

* :func:`start_temporary_api`, called before Prefect is imported, binds a socket on
  127.0.0.1 and points ``PREFECT_API_URL`` at it. Nothing starts yet: a command that ends
  before any flow runs (a bad argument) costs nothing.
* Prefect's first request waits in the socket's queue; a thread sees it and starts the
  server on that socket, then lives as long as the server (the parent-death signal is
  tied to the thread that started the child).
* At exit (after Prefect's own exit handlers have sent their logs and events), the server
  is asked to stop.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Sequence
from pathlib import Path

from okr_pipeline.flows.prefect_server import die_with_parent, stop_process
from okr_pipeline.okr_core.settings import mask_url

#: Commands that run the flow in this process and need a Prefect API for it.
FLOW_COMMANDS = frozenset({"run", "demo", "backfill"})

#: Their flag: run on Prefect even when no Prefect API is configured (a temporary server).
PREFECT_FLAG = "--prefect"

#: How Prefect serves its own temporary server (prefect.server.api.server), minus the port.
_UVICORN_ARGS = (
    "--factory",
    "prefect.server.api.server:create_app",
    "--log-level",
    "error",
    "--lifespan",
    "on",
)

#: The environment Prefect gives its own temporary server: no UI, no scheduler services.
_SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}

_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")


class TemporaryApi:
    """A temporary Prefect API server, started on its first request.

    Attributes:
        api_url: Its API URL (``http://127.0.0.1:PORT/api``).
        process: The server process once started, else None.
    """

    def __init__(self, listener: socket.socket, app_dir: str) -> None:
        self.api_url = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
        self.process: subprocess.Popen[bytes] | None = None
        self._listener = listener
        self._app_dir = app_dir
        # The environment as okr was started: later changes for okr's own Prefect (its
        # console log level, PREFECT_API_URL) are not the server's.
        self._env = {**os.environ, **_SERVER_ENV}
        self._log = tempfile.TemporaryFile(prefix="okr-prefect-server-")  # noqa: SIM115
        self._lock = threading.Lock()
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._serve_when_asked, name="okr-prefect-server", daemon=True
        )

    def start(self) -> None:
        """Wait, in a thread, for the first request, then start the server."""
        self._thread.start()

    def _serve_when_asked(self) -> None:
        readable, _, _ = select.select([self._listener.fileno(), self._wake_r], [], [])
        with self._lock:
            if self._stopping or self._wake_r in readable:
                return
            fd = self._listener.fileno()
            command = ["uvicorn", "--app-dir", self._app_dir, *_UVICORN_ARGS, "--fd", str(fd)]
            try:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", *command],
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=self._log,
                    pass_fds=(fd,),
                    preexec_fn=die_with_parent(),  # only prctl: see die_with_parent
                    process_group=0 if os.name == "posix" else None,
                )
            finally:
                # Only the server holds the socket now: if it dies, clients are refused
                # at once instead of waiting in a queue nobody reads.
                self._listener.close()
        # This thread started the server, so it must outlive it: the kernel signals the
        # server when the thread that started it ends.
        os.read(self._wake_r, 1)

    def problem(self) -> str | None:
        """Why the server stopped, when it stopped before okr did; None otherwise."""
        code = self.process.poll() if self.process is not None else None
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
        """Stop the server if it started (SIGTERM: it writes what it holds); done at exit."""
        with self._lock:  # from here on, the thread starts no server
            self._stopping = True
        if self.process is not None:
            stop_process(self.process)
        os.write(self._wake_w, b"x")  # lets the thread end (the server has stopped)
        self._thread.join(timeout=5)
        self._listener.close()  # if no server took it; closing twice is harmless
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._log.close()


_temporary: list[TemporaryApi] = []


def temporary_api() -> TemporaryApi | None:
    """The temporary API server this process set up, if any."""
    return _temporary[0] if _temporary else None


def start_temporary_api(argv: Sequence[str]) -> TemporaryApi | None:
    """Set up a temporary Prefect API for a flow command, unless one is configured.

    Call before Prefect is imported. Returns at once; the server starts on Prefect's first
    request. Sets ``PREFECT_API_URL`` in this process's environment; stops the server at
    exit.

    Args:
        argv: The command line after the program name (``sys.argv[1:]``).

    Returns:
        The server, or None: not a flow command, or one without ``--prefect`` (it runs
        without Prefect, or on the configured API), an API already configured, or Prefect
        already imported (it reads its settings at import).
    """
    if _temporary or _command(argv) not in FLOW_COMMANDS or "--help" in argv:
        return None
    if PREFECT_FLAG not in argv:
        return None
    if "prefect" in sys.modules or _api_configured_elsewhere():
        return None
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        return None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    server = TemporaryApi(listener, app_dir=str(Path(spec.origin).parent.parent))
    server.start()
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


def prefect_api_configured() -> bool:
    """Whether a Prefect API may be configured (see :func:`_api_configured_elsewhere`).

    Reads the environment and Prefect's files without importing Prefect (a second's work).
    """
    return _api_configured_elsewhere()


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
