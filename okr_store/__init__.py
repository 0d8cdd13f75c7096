"""Persistence of okr-pipeline: SQLAlchemy models, Alembic migrations and the Store.

Imports ``okr_core`` only; never ``connectors``, ``flows`` or ``prefect``.
"""

from okr_pipeline.okr_store.db import current_revision, head_revision, make_engine, upgrade
from okr_pipeline.okr_store.records import (
    AlertRow,
    EvaluationRecord,
    MeasurementRecord,
    MeasurementRow,
    NoteRow,
    RunCounts,
    RunRow,
    StatusRow,
    StoredKeyResult,
    SyncResult,
)
from okr_pipeline.okr_store.store import Store

__all__ = [
    "AlertRow",
    "EvaluationRecord",
    "MeasurementRecord",
    "MeasurementRow",
    "NoteRow",
    "RunCounts",
    "RunRow",
    "StatusRow",
    "Store",
    "StoredKeyResult",
    "SyncResult",
    "current_revision",
    "head_revision",
    "make_engine",
    "upgrade",
]
