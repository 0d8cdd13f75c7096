"""``--json`` output of the listing commands: one shape per listing, documented in the README.

The rules are the same everywhere (and the same as ``okr status --json``): stable keys in
snake_case, present even when null; stored values (measurements, targets, baselines) are
exact decimals written as strings (``"32.68"``, never a float); scores and progress are
JSON numbers; times are ISO 8601 with their offset; a missing value is null, never 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from okr_pipeline.connectors.registry import SourceDescription
    from okr_pipeline.okr_core.alerting.model import Silence
    from okr_pipeline.okr_store.records import AlertRow, RunRow


def json_default(value: Any) -> Any:
    """Exact decimals as strings, times as ISO 8601; anything else is a bug."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(data: Any) -> str:
    """``data`` as indented JSON, by the rules of this module."""
    return json.dumps(data, default=json_default, indent=2, ensure_ascii=False)


def run_json(row: RunRow) -> dict[str, Any]:
    """One run of ``okr runs --json``."""
    return {
        "id": row.id,
        "as_of": row.as_of,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "status": row.status,
        "trigger": row.trigger,
        "total": row.total,
        "ok": row.ok,
        "no_data": row.no_data,
        "error": row.error,
        "flow_run_id": row.flow_run_id,
    }


def alert_json(row: AlertRow) -> dict[str, Any]:
    """One alert of ``okr alerts --json``: the record of one notification."""
    return {
        "id": row.id,
        "created_at": row.created_at,
        "run_id": row.run_id,
        "kr": row.ref,
        "kind": row.kind,
        "transition": row.transition,
        "route": row.route,
        "channel": row.channel or None,
        "delivery": row.delivery,
        "error": row.error,
        "payload": dict(row.payload),
    }


def silence_json(row: Silence, now: datetime) -> dict[str, Any]:
    """One silence of ``okr silences --json``."""
    return {
        "id": row.id,
        "target": row.target,
        "until": row.until,
        "reason": row.reason,
        "created_at": row.created_at,
        "active": now < row.until,
    }


def connector_json(row: SourceDescription) -> dict[str, Any]:
    """One connector of ``okr connectors --json``."""
    return {
        "type": row.type,
        "reads": row.reads or row.doc,
        "authentication": row.authentication,
        "tested_against": row.tested_against,
        "package": row.distribution,
        "class": row.class_path,
    }


def listing(items: Iterable[Mapping[str, Any]]) -> str:
    """A JSON array of ``items``."""
    return dumps(list(items))
