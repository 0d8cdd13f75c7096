"""Persistence of okr-pipeline: SQLAlchemy models, Alembic migrations and the Store.

Imports ``okr_core`` only; never ``connectors``, ``flows`` or ``prefect``.

The names below are loaded when first asked for: importing one module of the package
(``okr_store.db``, ``okr_store.records``) does not import the ORM models and every query
with it, which a command that only reads a few tables (``okr status``) does not need.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Each public name and the module that defines it.
_HOMES = {
    "current_revision": "db",
    "head_revision": "db",
    "make_engine": "db",
    "upgrade": "db",
    "AlertRow": "records",
    "EvaluationRecord": "records",
    "MeasurementRecord": "records",
    "MeasurementRow": "records",
    "NoteRow": "records",
    "RunCounts": "records",
    "RunRow": "records",
    "StatusRow": "records",
    "StoredKeyResult": "records",
    "SyncResult": "records",
    "Store": "store",
}

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


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
