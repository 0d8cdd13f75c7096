"""A history people can trust: one measurement per KR and as-of, no view of the future.

Each test runs the real flow on the demo project of a fixed quarter (2026-Q4), with fixed
as-ofs in it, against a real SQLite store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from okr_pipeline.flows.update import update_key_results
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.run.preflight import check_as_of, due_time
from okr_pipeline.run.record import open_store
from tests.ports import free_port

pytestmark = pytest.mark.usefixtures("prefect_harness")

TODAY = date(2026, 10, 20)  # the demo's quarter is 2026-Q4
WEEKS = [datetime(2026, 10, 1, 9, tzinfo=UTC) + timedelta(days=7 * n) for n in range(1, 7)]
DEMO_KRS = 8  # all of them take an as-of (:as_of in SQL, ${as_of} in HTTP requests)


@pytest.fixture
def make_demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], Path]]:
    """Demo projects of the fixed quarter, each with its analytics API up for the test."""
    with contextlib.ExitStack() as stack:
        yield lambda directory: stack.enter_context(_demo(directory, monkeypatch))


@pytest.fixture
def project(tmp_path: Path, make_demo: Callable[[Path], Path]) -> Path:
    return make_demo(tmp_path / "a")


@contextlib.contextmanager
def _demo(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from okr_pipeline.demo.analytics_api import TOKEN_SECRET, start_in_background
    from okr_pipeline.demo.project import create_demo_project

    for name in [n for n in os.environ if n.startswith("OKR_")]:
        if name != "OKR_REQUIRE_DB" and not name.startswith("OKR_TEST_"):
            monkeypatch.delenv(name)
    port = free_port()
    project = create_demo_project(directory, port=port, today=TODAY)
    token = load_settings(project).secrets[TOKEN_SECRET].get_secret_value()
    server: ThreadingHTTPServer = start_in_background(project / "warehouse.db", token, port)
    try:
        yield project
    finally:
        server.shutdown()
        server.server_close()


def _rows(project: Path, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(load_settings(project).resolved_store_url())
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


MEASUREMENTS = (
    "SELECT k.key, m.as_of, m.outcome, m.value FROM measurements m "
    "JOIN key_results k ON k.id = m.kr_id ORDER BY k.key, m.as_of"
)
EVALUATIONS = (
    "SELECT k.key, e.evaluated_at, e.status, e.value, e.progress, e.score, "
    "e.expected_progress, e.forecast_value, e.forecast_low, e.forecast_high, "
    "e.forecast_score, e.reason FROM evaluations e "
    "JOIN key_results k ON k.id = e.kr_id ORDER BY k.key, e.evaluated_at"
)


def test_rerun_of_an_as_of_replaces_it(project: Path) -> None:
    for week in WEEKS[:3]:
        update_key_results(project_dir=str(project), as_of=week, all_krs=True)
    before = _rows(project, EVALUATIONS)
    for _ in range(3):  # reruns minutes apart, the same as-of
        update_key_results(project_dir=str(project), as_of=WEEKS[2], all_krs=True)
    # One current measurement and evaluation per KR and as-of; the forecast did not move.
    counts = _rows(project, "SELECT kr_id, as_of, count(*) FROM measurements GROUP BY 1, 2")
    assert {n for *_, n in counts} == {1} and len(counts) == 8 * 3
    assert _rows(project, EVALUATIONS) == before
    # The replaced rows are kept for audit, and nothing reads them as history.
    assert _rows(project, "SELECT count(*) FROM superseded_measurements") == [(8 * 3,)]
    reasons = [r[-1] for r in _rows(project, EVALUATIONS) if r[1] == WEEKS[2]]
    assert not any("(4 points)" in reason or "(5 points)" in reason for reason in reasons)


def test_as_of_runs_build_a_forecast(project: Path) -> None:
    # Fixed as-ofs in a fixed quarter: the test means the same on any day it runs.
    for week in WEEKS:
        update_key_results(project_dir=str(project), as_of=week, all_krs=True)
    store = open_store(load_settings(project))
    try:
        row = {r.ref: r for r in store.latest_status()}["podcast-discovery/subscriptions-per-user"]
    finally:
        store.close()
    assert row.as_of == WEEKS[-1]
    assert row.forecast_value is not None and "forecast" in row.reason, row.reason


def test_the_database_refuses_a_second_measurement_for_an_as_of(project: Path) -> None:
    update_key_results(project_dir=str(project), as_of=WEEKS[0], all_krs=True)
    engine = sa.create_engine(load_settings(project).resolved_store_url())
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO measurements (kr_id, run_id, measured_at, as_of, value, "
                    "outcome) SELECT kr_id, run_id, measured_at, as_of, value, outcome "
                    "FROM measurements LIMIT 1"
                )
            )
    finally:
        engine.dispose()


def test_an_earlier_as_of_is_evaluated_without_later_values(
    project: Path, tmp_path: Path, make_demo: Callable[[Path], Path]
) -> None:
    # November first, then a backfill of early October: October sees nothing of November.
    update_key_results(project_dir=str(project), as_of=WEEKS[5], all_krs=True)
    update_key_results(project_dir=str(project), as_of=WEEKS[0], all_krs=True)
    october = [r for r in _rows(project, EVALUATIONS) if r[1] == WEEKS[0]]
    alone = make_demo(tmp_path / "b")
    update_key_results(project_dir=str(alone), as_of=WEEKS[0], all_krs=True)
    assert october == [r for r in _rows(alone, EVALUATIONS) if r[1] == WEEKS[0]]
    assert all("points" not in r[-1] or "(1 point)" in r[-1] for r in october)


def test_backfill_in_any_order_equals_date_order(
    project: Path, tmp_path: Path, make_demo: Callable[[Path], Path]
) -> None:
    shuffled = make_demo(tmp_path / "b")
    weeks = WEEKS[1:6]
    for week in weeks:
        update_key_results(project_dir=str(project), as_of=week, backfill=True)
    order = [weeks[3], weeks[0], weeks[4], weeks[2], weeks[1]]
    for week in order:
        update_key_results(project_dir=str(shuffled), as_of=week, backfill=True)
    in_order = _rows(project, EVALUATIONS)
    assert len(in_order) == DEMO_KRS * len(weeks)
    assert _rows(shuffled, MEASUREMENTS) == _rows(project, MEASUREMENTS)
    assert _rows(shuffled, EVALUATIONS) == in_order
    # Forecasts exist later in the quarter, so the comparison covers them.
    assert any(r[7] is not None for r in in_order)


def test_backfill_skips_what_is_there_unless_replacing(project: Path) -> None:
    first = update_key_results(project_dir=str(project), as_of=WEEKS[0], backfill=True)
    again = update_key_results(project_dir=str(project), as_of=WEEKS[0], backfill=True)
    replaced = update_key_results(
        project_dir=str(project), as_of=WEEKS[0], backfill=True, replace_existing=True
    )
    assert (first.measured, again.measured, replaced.measured) == (DEMO_KRS, 0, DEMO_KRS)
    assert _rows(project, "SELECT count(*) FROM measurements") == [(DEMO_KRS,)]
    # A backfill sends no alerts.
    assert _rows(project, "SELECT count(*) FROM alerts") == [(0,)]


def test_a_rerun_does_not_count_as_another_pending_evaluation(project: Path) -> None:
    # alerts.yaml: pending_evaluations 2. The same as-of twice is one evaluation.
    update_key_results(project_dir=str(project), as_of=WEEKS[3], all_krs=True)
    states = _rows(project, "SELECT kr_id, kind, phase, active_count FROM alert_states")
    update_key_results(project_dir=str(project), as_of=WEEKS[3], all_krs=True)
    assert _rows(project, "SELECT kr_id, kind, phase, active_count FROM alert_states") == states
    assert _rows(project, "SELECT count(*) FROM alerts WHERE transition = 'firing'") == [(0,)]


def test_status_shows_the_runs_as_of_and_never_a_future_one(project: Path) -> None:
    update_key_results(project_dir=str(project), as_of=WEEKS[1], all_krs=True)
    future = datetime.now(UTC) + timedelta(days=30)
    with pytest.raises(ConfigError, match="in the future"):
        update_key_results(project_dir=str(project), as_of=future, all_krs=True)
    update_key_results(project_dir=str(project), as_of=future, all_krs=True, allow_future=True)
    store = open_store(load_settings(project))
    try:
        now_rows = store.latest_status(at=datetime.now(UTC))
        assert {r.as_of for r in now_rows} == {WEEKS[1]}
        assert {r.as_of for r in store.latest_status()} == {future}
    finally:
        store.close()


def test_runs_record_their_as_of_and_partial_status(project: Path) -> None:
    env = project / ".env"
    # Point the analytics connection at a port where nothing listens: 2 of 8 KRs fail.
    text = env.read_text()
    env.write_text(
        "\n".join(
            f"OKR_CONNECTIONS__ANALYTICS__URL=http://127.0.0.1:{free_port()}"
            if line.startswith("OKR_CONNECTIONS__ANALYTICS__URL")
            else line
            for line in text.splitlines()
        )
        + "\n"
    )
    summary = update_key_results(project_dir=str(project), as_of=WEEKS[1], all_krs=True)
    assert summary.errors == 2
    store = open_store(load_settings(project))
    try:
        (run,) = store.runs()
    finally:
        store.close()
    assert (run.as_of, run.status, run.ok, run.error) == (WEEKS[1], "partial", 6, 2)


def test_a_run_left_running_is_closed_as_crashed(project: Path) -> None:
    store = open_store(load_settings(project))
    try:
        dead = store.start_run(WEEKS[0], None, lease_until=datetime.now(UTC) - timedelta(1))
        alive = store.start_run(WEEKS[0], None, lease_until=datetime.now(UTC) + timedelta(1))
    finally:
        store.close()
    update_key_results(project_dir=str(project), as_of=WEEKS[1], all_krs=True)
    statuses = dict(_rows(project, "SELECT id, status FROM runs"))
    assert (statuses[dead], statuses[alive]) == ("crashed", "running")


@pytest.mark.parametrize(
    ("now", "scheduled", "judged"),
    [
        # Started 0.1 s early: judged at its scheduled time.
        (
            datetime(2026, 11, 3, 21, 34, 59, 900000, tzinfo=UTC),
            datetime(2026, 11, 3, 21, 35, tzinfo=UTC),
            datetime(2026, 11, 3, 21, 35, tzinfo=UTC),
        ),
        # Started late: judged at the wall clock.
        (
            datetime(2026, 11, 3, 21, 36, tzinfo=UTC),
            datetime(2026, 11, 3, 21, 35, tzinfo=UTC),
            datetime(2026, 11, 3, 21, 36, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 3, 21, 36, tzinfo=UTC),
            None,
            datetime(2026, 11, 3, 21, 36, tzinfo=UTC),
        ),
    ],
)
def test_due_time_is_the_scheduled_start_when_early(
    now: datetime, scheduled: datetime | None, judged: datetime
) -> None:
    from okr_pipeline.run.select import is_due

    assert due_time(now, scheduled) == judged
    last = datetime(2026, 11, 3, 21, 30, tzinfo=UTC)
    assert is_due("*/5 * * * *", last, due_time(now, scheduled))


def test_check_as_of_tolerates_clock_skew_only() -> None:
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)
    check_as_of(now + timedelta(seconds=30), now, allow_future=False)
    with pytest.raises(ConfigError, match="--allow-future"):
        check_as_of(now + timedelta(hours=1), now, allow_future=False)
    check_as_of(now + timedelta(days=9), now, allow_future=True)


def test_evaluating_in_chunks_changes_nothing(
    project: Path,
    tmp_path: Path,
    make_demo: Callable[[Path], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Runs evaluate their KRs a chunk at a time (bounded memory); 3 splits the 8 demo KRs
    # into chunks of 3, 3 and 2, and every evaluation must be what one chunk gives.
    from okr_pipeline.run import recorder

    chunked = make_demo(tmp_path / "b")
    for week in WEEKS[:4]:
        update_key_results(project_dir=str(project), as_of=week, all_krs=True)
    monkeypatch.setattr(recorder, "EVALUATE_CHUNK", 3)
    for week in WEEKS[:4]:
        update_key_results(project_dir=str(chunked), as_of=week, all_krs=True)
    whole = _rows(project, EVALUATIONS)
    assert len(whole) == DEMO_KRS * 4
    assert _rows(chunked, EVALUATIONS) == whole
    assert any(r[7] is not None for r in whole)  # forecasts are compared too
