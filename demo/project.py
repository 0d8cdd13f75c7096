"""``okr demo``: a project folder that works like a user's own, run end to end.

The folder holds ``okrs/`` (OKR files modelled on the classic examples), ``warehouse.db``
(a quarter of synthetic product data), ``.env`` (the connections and the API token) and,
after the run, ``.okr/okr.db`` (the store). The demo backfills one run a week since the
quarter began, so that forecasts have a history to read, then measures now.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.console import Console

from okr_pipeline.demo.analytics_api import INBOX, TOKEN_SECRET, WEBHOOK_PATH, start_in_background
from okr_pipeline.demo.okrs import demo_okrs
from okr_pipeline.demo.warehouse import build_warehouse, quarter_of
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.loader import load_okrs


def create_demo_project(directory: Path, *, port: int, today: date | None = None) -> Path:
    """Write the demo project into ``directory`` (which must be new or empty).

    Returns:
        The project folder, resolved.

    Raises:
        ConfigError: ``directory`` exists and holds something else.
    """
    project = directory.resolve()
    if project.exists() and any(project.iterdir()):
        if not (project / "okrs" / "podcasts.yaml").exists():
            raise ConfigError(
                f"'{directory}' exists and is not empty; name a new folder for the demo"
            )
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
        f"OKR_SECRETS__{TOKEN_SECRET.upper()}={secrets.token_urlsafe(24)}\n",
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


@contextlib.contextmanager
def demo_running(directory: Path, *, port: int, console: Console) -> Iterator[Path]:
    """Create the demo project, serve its analytics API and fill its history.

    A new demo backfills one run a week since the cycle began (so that forecasts have a
    history to read); the caller then runs it now, while the API is still up.

    Yields:
        The project folder.
    """
    from okr_pipeline.flows.update import update_key_results
    from okr_pipeline.okr_core.settings import load_settings

    fresh = not (directory / ".okr").exists()
    project = create_demo_project(directory, port=port)
    settings = load_settings(project)
    token = settings.secrets[TOKEN_SECRET].get_secret_value()
    analytics = settings.connections["analytics"].url.get_secret_value()
    try:
        server = start_in_background(
            project / "warehouse.db", token, int(analytics.rsplit(":", 1)[1])
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot start the demo analytics API on {analytics}: {exc.strerror}; "
            "stop what uses that port or run 'okr demo' with another --port in a new folder"
        ) from exc
    try:
        now = datetime.now(UTC)
        if fresh:
            start = date.fromisoformat(load_cycle_start(project))
            history = backfill_times(start, now)
            console.print(
                f"Demo project in {project}: backfilling {len(history)} weekly runs, then now."
            )
            for moment in history:
                update_key_results(project_dir=str(project), as_of=moment, all_krs=True)
        yield project
    finally:
        server.shutdown()
        server.server_close()


def next_steps(directory: Path) -> str:
    """What to do after the demo ran."""
    return (
        f"\nNext: cd {directory} && okr status. To run it again later, keep its API up with "
        f"'okr demo-api {directory}' in another terminal, then 'okr run'. The alerts it "
        f"sent are in {directory / INBOX}; 'okr alerts' lists them."
    )


def load_cycle_start(project: Path) -> str:
    """The start date of the demo's cycle, read back from its OKR files."""
    okr_set = load_okrs(project / "okrs")
    return okr_set.files[0].definition.cycle.start.isoformat()
