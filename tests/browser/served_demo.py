"""The demo as people see it: its store filled by real runs, the dashboard served over HTTP.

Shared by the browser tests and the API tests (``tests/web/test_api_schema.py``):
:func:`filled_demo` builds the demo project, adds a manual KR when the demo has none, runs it
once a week since the cycle began and once now (the Prefect-free ``run_update``, as the demo
does with its flow), and configures a check-in token (only its hash is stored, as people do
with ``okr ui hash``). :func:`serving` serves an ASGI app with uvicorn on a free port.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn

from okr_pipeline.demo.project import backfill_times, load_cycle_start
from okr_pipeline.okr_core.loader import load_okrs
from okr_pipeline.okr_core.settings import Settings, load_settings
from okr_pipeline.okr_store.records import StatusRow
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.update import RunRequest, run_update
from tests.conftest import demo_project_in
from tests.ports import free_port

#: The check-in token the tests type in; the app only ever sees its hash.
TOKEN = "tok-browser-7Qz9"
#: The manual KR added when the demo has none (a milestone count people report by hand).
MANUAL_OBJECTIVE = "listener-community"
MANUAL_KR = "meetups-held"
#: The KR whose page the tests open and photograph: measured weekly, so its chart has points.
CHART_KR = "grow-listening/weekly-active-listeners"


@dataclass(frozen=True)
class FilledDemo:
    """A demo project whose store holds a cycle's worth of runs.

    Attributes:
        project: the project folder.
        settings: its settings, the check-in token's hash included.
        store_url: the store's SQLAlchemy URL.
        now: the fixed time of the last run; the app's clock reads ``now + 1 minute``.
        manual_ref: ``objective/kr`` of a manual KR (values by check-in only).
    """

    project: Path
    settings: Settings
    store_url: str
    now: datetime
    manual_ref: str

    def clock(self) -> datetime:
        """The app's fixed clock: a minute after the last run."""
        return self.now + timedelta(minutes=1)

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        """The store, opened for the test to read it, closed after."""
        store = Store.open(self.store_url)
        try:
            yield store
        finally:
            store.close()


def hash_token(token: str) -> str:
    """The token's hash as the dashboard stores it (``okr ui hash``)."""
    from okr_pipeline.web.auth import hash_secret

    return hash_secret(token)


def find_manual_kr(project: Path) -> str | None:
    """``objective/kr`` of the first manual KR in the project's OKR files, or None."""
    okr_set = load_okrs(project / "okrs")
    for loaded in okr_set.files:
        for objective in loaded.definition.objectives:
            for kr in objective.key_results:
                if kr.source.get("type") == "manual":
                    return f"{objective.id}/{kr.id}"
    return None


def add_manual_kr(project: Path) -> str:
    """Add an objective with one manual KR to the demo, in the demo's cycle.

    Returns:
        Its ``objective/kr``.
    """
    cycle = load_okrs(project / "okrs").files[0].definition.cycle
    (project / "okrs" / "community.yaml").write_text(
        f"cycle:\n  name: {cycle.name}\n  start: {cycle.start}\n  end: {cycle.end}\n"
        "  timezone: UTC\n\n"
        "objectives:\n"
        f"  - id: {MANUAL_OBJECTIVE}\n"
        "    title: Listeners meet each other\n"
        "    owner: lee@example.com\n"
        "    type: committed\n"
        "    parent: grow-listening\n"
        "    key_results:\n"
        f"      - id: {MANUAL_KR}\n"
        "        title: Hold 6 listener meetups\n"
        "        unit: meetups\n"
        "        baseline: 0\n"
        "        target: 6\n"
        "        source:\n"
        "          type: manual\n",
        encoding="utf-8",
    )
    return f"{MANUAL_OBJECTIVE}/{MANUAL_KR}"


@contextlib.contextmanager
def filled_demo(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FilledDemo]:
    """The demo project in ``directory``, its store filled by weekly runs and one run now."""
    with demo_project_in(directory, monkeypatch) as project:
        manual_ref = find_manual_kr(project) or add_manual_kr(project)
        # Whole seconds: the times the pages print and the store holds then compare as text.
        now = datetime.now(UTC).replace(microsecond=0)
        start = date.fromisoformat(load_cycle_start(project))
        for moment in [*backfill_times(start, now), now]:
            summary = run_update(RunRequest(project_dir=project, as_of=moment, all_krs=True))
            assert summary.measured > 0, f"the demo measured nothing as of {moment}"
        monkeypatch.setenv("OKR_UI__TOKEN_HASH", hash_token(TOKEN))
        settings = load_settings(project)
        yield FilledDemo(
            project=project,
            settings=settings,
            store_url=settings.resolved_store_url(),
            now=now,
            manual_ref=manual_ref,
        )


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free local port, in a thread.

    Yields:
        The base URL, ``http://127.0.0.1:<port>``.
    """
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not server.started:
            if not thread.is_alive() or datetime.now(UTC) > deadline:
                raise RuntimeError(f"the dashboard did not start on port {port}")
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def store_snapshot(store_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store, sorted: equal snapshots mean nothing changed."""
    engine = sa.create_engine(store_url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {
                name: sorted(
                    (tuple(row) for row in conn.execute(sa.select(table))),
                    key=repr,
                )
                for name, table in meta.tables.items()
            }
    finally:
        engine.dispose()


def kr_id_of(store: Store, ref: str, at: datetime) -> int:
    """The store id of the active KR ``objective/kr``."""
    for kr in store.active_key_results(at):
        if kr.ref == ref:
            return kr.kr_id
    raise AssertionError(f"no active KR {ref} in the store")


def latest_by_ref(store: Store) -> dict[str, StatusRow]:
    """Where each KR stands in the store, by ``objective/kr``."""
    return {row.ref: row for row in store.latest_status()}
