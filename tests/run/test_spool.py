"""The spool keeps a run's values when the store fails: exact, per store, with a fallback."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from okr_pipeline.okr_store.records import MeasurementRecord
from okr_pipeline.run.spool import pending_spools, spool_dirs, write_spool

T = datetime(2026, 11, 3, 9, tzinfo=UTC)
STORE = "postgresql+psycopg://bob:pw@db/okr"
MEASUREMENTS = [
    MeasurementRecord(1, T, T, "ok", Decimal("0.1000000000000000000000000001")),
    MeasurementRecord(2, T, T, "error", None, "HTTP 503 from api", "retriable"),
    MeasurementRecord(3, T, T, "no_data", None),
]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(spool_dirs(tmp_path)[1], ignore_errors=True)


def test_round_trip_is_exact_and_per_store(project: Path) -> None:
    path = write_spool(project, STORE, T, "flow-1", MEASUREMENTS)
    assert path.parent == project / ".okr" / "spool"
    assert "pw" not in path.read_text() and "bob" not in path.name
    (spooled,) = pending_spools(project, STORE)
    assert (spooled.as_of, spooled.flow_run_id, spooled.measurements) == (
        T,
        "flow-1",
        MEASUREMENTS,
    )
    assert list(pending_spools(project, "sqlite:///other.db")) == []


def test_falls_back_when_the_project_folder_cannot_be_written(project: Path) -> None:
    (project / ".okr").write_text("a file where the folder should be")
    path = write_spool(project, STORE, T, None, MEASUREMENTS)
    assert path.parent == spool_dirs(project)[1]
    assert [s.path for s in pending_spools(project, STORE)] == [path]
