"""``okr demo``: a project folder that works like a user's own, run end to end.

The folder holds ``okrs/`` (OKR files modelled on the classic examples), ``warehouse.db``
(a quarter of synthetic product data), ``.env`` (the connections and the API token) and,
after the run, ``.okr/okr.db`` (the store). The demo backfills one run a week since the
quarter began, so that forecasts have a history to read, then measures now.
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

from rich.console import Console

from okr_pipeline.demo.analytics_api import INBOX, TOKEN_SECRET, WEBHOOK_PATH, make_server
from okr_pipeline.demo.okrs import demo_okrs
from okr_pipeline.demo.warehouse import build_warehouse, quarter_of
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.loader import load_okrs

#: The demo analytics API's port when it is free (``okr demo`` takes another one otherwise).
DEFAULT_PORT = 8765


def is_earlier_demo(directory: Path) -> bool:
    """True when ``directory`` holds a demo project already (it is run again, not rebuilt).

    Raises:
        ConfigError: ``directory`` exists, is not empty, and is not a demo project.
    """
    project = directory.resolve()
    if not (project.exists() and any(project.iterdir())):
        return False
    if not (project / "okrs" / "podcasts.yaml").exists():
        raise ConfigError(f"'{directory}' exists and is not empty; name a new folder for the demo")
    return True


def create_demo_project(
    directory: Path, *, port: int, today: date | None = None, token: str | None = None
) -> Path:
    """Write the demo project into ``directory`` (which must be new or empty).

    Args:
        directory: The folder to create (or an empty one).
        port: The demo analytics API's port, written into ``.env`` and ``alerts.yaml``.
        today: The day the demo's quarter is chosen by (default: today, UTC).
        token: The API token to write into ``.env`` (default: a new random one).

    Returns:
        The project folder, resolved.

    Raises:
        ConfigError: ``directory`` exists and holds something else.
    """
    project = directory.resolve()
    if is_earlier_demo(directory):
        return project  # an earlier demo: run it again, keeping its history
    today = today or datetime.now(UTC).date()
    name, start, end = quarter_of(today)
    (project / "okrs").mkdir(parents=True, exist_ok=True)
    build_warehouse(project / "warehouse.db", start=start, end=datetime.now(UTC))
    for filename, text in demo_okrs(name, start, end).items():
        (project / "okrs" / filename).write_text(text, encoding="utf-8")
    (project / ".env").write_text(
        "# Settings of the demo project; see the README's Settings section.\n"
        f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{project / 'warehouse.db'}\n"
        f"OKR_CONNECTIONS__ANALYTICS__URL=http://127.0.0.1:{port}\n"
        "OKR_CONNECTIONS__WAREHOUSE__OWNER=data-team\n"
        "OKR_CONNECTIONS__ANALYTICS__OWNER=data-team\n"
        f"OKR_SECRETS__{TOKEN_SECRET.upper()}={token or secrets.token_urlsafe(24)}\n",
        encoding="utf-8",
    )
    (project / ".env").chmod(0o600)
    (project / "alerts.yaml").write_text(
        "# Where alerts go; see the README's Alerts section. The demo's analytics API\n"
        f"# receives them and appends them to {INBOX}.\n"
        "defaults:\n  pending_evaluations: 2\n  repeat_interval: 3d\n"
        "routes:\n  - name: data-team\n    owners: [data-team]\n"
        f"    channels: ['json://127.0.0.1:{port}{WEBHOOK_PATH}?+X-Team=data']\n"
        "default_route:\n"
        f"  channels: ['json://127.0.0.1:{port}{WEBHOOK_PATH}']\n",
        encoding="utf-8",
    )
    return project


def backfill_times(start: date, now: datetime) -> list[datetime]:
    """One time a week from the cycle's start up to (not including) ``now``."""
    first = datetime(start.year, start.month, start.day, 9, tzinfo=UTC)
    times = []
    moment = first + timedelta(days=7)
    while moment < now - timedelta(days=1):
        times.append(moment)
        moment += timedelta(days=7)
    return times


def demo_port(project: Path) -> int:
    """The analytics API's port written in an existing demo project's ``.env``."""
    from okr_pipeline.okr_core.settings import load_settings

    analytics = load_settings(project).connections["analytics"].url.get_secret_value()
    return int(analytics.rsplit(":", 1)[1].split("/", 1)[0])


def bind_api(
    warehouse: Path,
    token: str,
    port: int | None,
    fix: str = "stop what uses that port, or leave out --port to take a free one",
) -> ThreadingHTTPServer:
    """The demo API's server, bound (not serving yet) before anything is written.

    Args:
        warehouse: The warehouse file it reads (it need not exist yet).
        token: The bearer token it accepts.
        port: The port; None takes :data:`DEFAULT_PORT`, or any free one when that is taken.
        fix: What the user can do when ``port`` is busy.

    Raises:
        ConfigError: ``port`` was asked for and cannot be listened on.
    """
    try:
        return make_server(warehouse, token, DEFAULT_PORT if port is None else port)
    except OSError as exc:
        if port is None and exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return make_server(warehouse, token, 0)  # the OS picks a free port
        raise ConfigError(
            f"cannot start the demo analytics API on 127.0.0.1:{port}: "
            f"{exc.strerror or exc}; {fix} (nothing was written)"
        ) from exc


#: Told what the demo is doing: ``(phase, done, total)``; ``total`` None for a phase
#: without steps to count.
DemoProgress = Callable[[str, int, int | None], None]


def _no_progress(phase: str, done: int, total: int | None) -> None:
    pass


@contextlib.contextmanager
def demo_running(
    directory: Path,
    *,
    port: int | None,
    console: Console,
    progress: DemoProgress = _no_progress,
    update: Callable[..., object] | None = None,
) -> Iterator[Path]:
    """Create the demo project, serve its analytics API and fill its history.

    The API's port is taken before anything is written, so a busy port leaves nothing
    behind; a new demo that fails half-way (or is interrupted) is removed again. A new demo
    backfills one run a week since the cycle began (so that forecasts have a history to
    read); the caller then runs it now, while the API is still up.

    Args:
        directory: The demo's folder (new, empty, or an earlier demo to run again).
        port: The API's port for a new demo (None: :data:`DEFAULT_PORT` or a free one); an
            earlier demo keeps the port its ``.env`` names.
        console: Where to say what it does.
        progress: Told each phase and, while backfilling, how many runs are done.
        update: Runs one update, with the flow's parameters (default: the Prefect flow).

    Yields:
        The project folder.
    """
    from okr_pipeline.okr_core.settings import load_settings

    if update is None:
        from okr_pipeline.flows.update import update_here

        update = update_here

    project = directory.resolve()
    earlier = is_earlier_demo(directory)
    if earlier:
        settings = load_settings(project)
        token = settings.secrets[TOKEN_SECRET].get_secret_value()
        server = bind_api(
            project / "warehouse.db",
            token,
            demo_port(project),
            fix="stop what uses it (an 'okr demo-api' of this demo?) and run 'okr demo' again",
        )
    else:
        token = secrets.token_urlsafe(24)
        server = bind_api(project / "warehouse.db", token, port)
    existed = project.exists()
    fresh = not (project / ".okr").exists()
    threading.Thread(target=server.serve_forever, name="demo-analytics-api", daemon=True).start()
    try:
        if not earlier:
            progress("writing the demo project", 0, None)
            create_demo_project(directory, port=int(server.server_address[1]), token=token)
        if fresh:
            now = datetime.now(UTC)
            start = date.fromisoformat(load_cycle_start(project))
            history = backfill_times(start, now)
            console.print(
                f"Demo project in {project}: backfilling {len(history)} weekly runs, then now.",
                highlight=False,
            )
            for done, moment in enumerate(history):
                progress("backfilling weekly runs", done, len(history))
                update(project_dir=str(project), as_of=moment, all_krs=True)
        yield project
    except BaseException:
        if not earlier:
            _remove_half_built(project, keep_folder=existed)
        raise
    finally:
        server.shutdown()
        server.server_close()


def _remove_half_built(project: Path, *, keep_folder: bool) -> None:
    """Remove what a new demo wrote before it failed (the folder too, unless it was there)."""
    if not project.exists():
        return
    if not keep_folder:
        shutil.rmtree(project, ignore_errors=True)
        return
    for child in project.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def next_steps(directory: Path, *, ui_port: int = 8400) -> str:
    """What to do after the demo ran: where to look, and how to run it again."""
    return "\n".join(
        [
            "",
            f"Next, in the demo's folder (cd {directory}):",
            f"  okr ui              the dashboard: open http://127.0.0.1:{ui_port} in a browser",
            "  okr report          the same as one HTML file to share (opens from disk)",
            "  okr status          where every KR stands, in the terminal",
            "  okr explain uptime  why a KR has its status",
            "  okr demo-api . &    keep the demo's analytics API up, then 'okr run' again",
            f"Alerts it sent are in {INBOX}; 'okr alerts' lists them.",
        ]
    )


def load_cycle_start(project: Path) -> str:
    """The start date of the demo's cycle, read back from its OKR files."""
    okr_set = load_okrs(project / "okrs")
    return okr_set.files[0].definition.cycle.start.isoformat()
