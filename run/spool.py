"""Keep a run's fetched values when the store fails, and store them on the next run.

A store that fails mid-run (server stopped, disk full, read-only folder) must not lose
what the sources answered: the run writes its measurements to a spool file and stops with
a setup error; the next run that can write to the same store stores them (as of the time
they describe, without replacing anything measured since) and deletes the file.

The spool lives in ``<project>/.okr/spool``; when that folder cannot be written either
(a read-only project), in a folder of the system's temporary directory named after the
project. Files are named by the store they belong to, so that values are never replayed
into another store.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from okr_pipeline.okr_store.records import MeasurementRecord

SPOOL_VERSION = 1


@dataclass(frozen=True)
class SpooledRun:
    """The measurements of one run that could not be stored.

    Attributes:
        path: The spool file.
        as_of: The run's as-of.
        flow_run_id: The Prefect flow run, if any.
        measurements: What the sources answered.
    """

    path: Path
    as_of: datetime
    flow_run_id: str | None
    measurements: list[MeasurementRecord]


def _store_key(store_url: str) -> str:
    # A digest of the URL (with its password) names the store without showing it.
    return hashlib.sha256(store_url.encode()).hexdigest()[:16]


def spool_dirs(project_dir: Path) -> list[Path]:
    """Where spool files of this project may be: its own folder, then the fallback."""
    project = project_dir.resolve()
    fallback = hashlib.sha256(str(project).encode()).hexdigest()[:12]
    return [project / ".okr" / "spool", Path(tempfile.gettempdir()) / f"okr-spool-{fallback}"]


def write_spool(
    project_dir: Path,
    store_url: str,
    as_of: datetime,
    flow_run_id: str | None,
    measurements: Sequence[MeasurementRecord],
) -> Path:
    """Write the measurements to a new spool file; return its path.

    Raises:
        OSError: no spool folder could be written.
    """
    payload = {
        "version": SPOOL_VERSION,
        "as_of": as_of.isoformat(),
        "flow_run_id": flow_run_id,
        "measurements": [
            {
                "kr_id": m.kr_id,
                "measured_at": m.measured_at.isoformat(),
                "as_of": m.as_of.isoformat(),
                "outcome": m.outcome,
                "value": None if m.value is None else str(m.value),
                "error_message": m.error_message,
                "error_kind": m.error_kind,
                # A check-in keeps who entered it and why.
                "kind": m.kind,
                "author": m.author,
                "note": m.note,
            }
            for m in measurements
        ],
    }
    name = f"{_store_key(store_url)}-{as_of.strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}.json"
    error: OSError | None = None
    for folder in spool_dirs(project_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(payload), encoding="utf-8")
            temporary.replace(path)  # atomic: a reader never sees half a file
            return path
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def pending_spools(project_dir: Path, store_url: str) -> Iterator[SpooledRun]:
    """The spool files waiting for this store, oldest as-of first."""
    prefix = f"{_store_key(store_url)}-"
    paths = [
        path
        for folder in spool_dirs(project_dir)
        if folder.is_dir()
        for path in folder.glob(f"{prefix}*.json")
    ]
    for path in sorted(paths, key=lambda p: p.name):
        data = json.loads(path.read_text(encoding="utf-8"))
        yield SpooledRun(
            path=path,
            as_of=datetime.fromisoformat(data["as_of"]),
            flow_run_id=data.get("flow_run_id"),
            measurements=[
                MeasurementRecord(
                    kr_id=int(m["kr_id"]),
                    measured_at=datetime.fromisoformat(m["measured_at"]),
                    as_of=datetime.fromisoformat(m["as_of"]),
                    outcome=m["outcome"],
                    value=None if m["value"] is None else Decimal(m["value"]),
                    error_message=m["error_message"],
                    error_kind=m["error_kind"],
                    kind=m.get("kind", "measured"),  # spooled before check-ins existed
                    author=m.get("author"),
                    note=m.get("note"),
                )
                for m in data["measurements"]
            ],
        )
