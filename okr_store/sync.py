"""Synchronise the stored definitions with a loaded OKR set.

Rows are matched by their YAML identity: the cycle by name, an objective by its id within
the cycle, a KR by its id within the objective. A match is updated in place, so edits (a
new title, a corrected target) keep the KR's history; what disappeared from the files is
archived, never deleted; what reappears is unarchived.

Built for 10,000 KRs: each table is read once, and inserts and updates go out as
executemany batches; there is no per-row SELECT.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from okr_pipeline.okr_core.definitions import CycleDef, KeyResultDef, ObjectiveDef, resolve_target
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_store.bulk import bulk_insert
from okr_pipeline.okr_store.models import Cycle, KeyResult, Meta, Objective
from okr_pipeline.okr_store.records import SyncResult

if TYPE_CHECKING:
    from okr_pipeline.okr_core.loader import OkrSet

FINGERPRINT_KEY = "definitions_fingerprint"
#: Arbitrary constant identifying the sync lock among PostgreSQL advisory locks.
PG_SYNC_LOCK = 0x6F6B725F73796E  # "okr_syn"

_OBJECTIVE_FIELDS = ("title", "owner", "type", "parent_key", "success_level")
_KR_FIELDS = (
    "title", "unit", "kind", "baseline", "baseline_auto", "target", "target_value", "floor",
    "weight", "schedule", "source_json", "source_type", "definition_hash", "alert_policy",
)  # fmt: skip


@dataclass
class _Wanted:
    """The definitions of one OKR set, keyed by YAML identity."""

    cycles: dict[str, CycleDef]
    objectives: dict[tuple[str, str], ObjectiveDef]
    key_results: dict[tuple[str, str, str], KeyResultDef]


def _collect(okr_set: OkrSet) -> _Wanted:
    wanted = _Wanted({}, {}, {})
    for cycle, objective, kr in okr_set.key_results():
        known = wanted.cycles.setdefault(cycle.name, cycle)
        if (known.start, known.end, known.timezone) != (cycle.start, cycle.end, cycle.timezone):
            raise ConfigError(
                f"cycle {cycle.name!r} is declared twice with different dates or timezone "
                f"({known.start}..{known.end} {known.timezone} and "
                f"{cycle.start}..{cycle.end} {cycle.timezone}); make them agree"
            )
        seen = wanted.objectives.setdefault((cycle.name, objective.id), objective)
        if seen is not objective:
            raise ConfigError(
                f"objective {objective.id!r} is declared twice in cycle {cycle.name!r}; "
                "objective ids must be unique within a cycle"
            )
        wanted.key_results[(cycle.name, objective.id, kr.id)] = kr
    return wanted


def _json_default(value: Any) -> Any:
    # YAML hands over dates and the loader may hand over Decimals; JSON has neither.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def alert_policy_json(kr: KeyResultDef) -> dict[str, Any] | None:
    """The KR's ``alerts:`` override as stored: plain JSON, durations as ISO 8601 strings.

    ``AlertPolicyOverride.model_validate`` reads it back to an equal override.
    """
    if kr.alerts is None:
        return None
    return kr.alerts.model_dump(mode="json", exclude_none=True)


def kr_definition_hash(kr: KeyResultDef) -> str:
    """Return a stable hash of everything stored from a KR definition.

    Stored hashes must never change: a changed hash counts every KR as edited.
    """
    baseline = kr.baseline if isinstance(kr.baseline, str) else _decimal_text(kr.baseline)
    target = kr.target if isinstance(kr.target, str) else _decimal_text(kr.target)
    payload = [
        kr.title, kr.unit, kr.effective_kind, baseline, target, _decimal_text(kr.floor),
        _decimal_text(kr.weight), kr.schedule, kr.source,
    ]  # fmt: skip
    policy = alert_policy_json(kr)
    if policy is not None:
        # Only when set: the hashes of KRs without an override stay what they were before
        # alerting existed, so upgrading does not count every KR as edited.
        payload.append({"alerts": policy})
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()


def resolved_target(
    kind: str, target: Decimal | str | None, baseline: Decimal | None
) -> Decimal | None:
    """Absolute target of a KR: 1 for a milestone, None while a relative one lacks a baseline."""
    if kind == "milestone":
        return Decimal(1)  # a milestone's value 1 means done (KeyResultDef.spec)
    if target is None or (isinstance(target, str) and baseline is None):
        return None
    return resolve_target(target, baseline if baseline is not None else Decimal(0))


def _kr_values(
    kr: KeyResultDef, kept_baseline: Decimal | None, definition_hash: str | None = None
) -> dict[str, Any]:
    auto = kr.baseline == "auto"
    baseline = kept_baseline if auto else kr.baseline
    assert not isinstance(baseline, str)
    source = json.loads(_canonical_json(kr.source))
    return {
        "title": kr.title,
        "unit": kr.unit,
        "kind": kr.effective_kind,
        "baseline": baseline,
        "baseline_auto": auto,
        "target": kr.target if isinstance(kr.target, str) else _decimal_text(kr.target),
        "target_value": resolved_target(kr.effective_kind, kr.target, baseline),
        "floor": kr.floor,
        "weight": kr.weight,
        "schedule": kr.schedule,
        "source_json": source,
        "source_type": str(source.get("type", "")),
        "definition_hash": definition_hash or kr_definition_hash(kr),
        "alert_policy": alert_policy_json(kr),
    }


def _objective_values(objective: ObjectiveDef) -> dict[str, Any]:
    return {
        "title": objective.title,
        "owner": objective.owner,
        "type": objective.type,
        "parent_key": objective.parent,
        "success_level": objective.success_level,
    }


def _bulk_update(
    conn: sa.Connection, table: sa.Table, fields: Iterable[str], rows: Sequence[dict[str, Any]]
) -> None:
    """UPDATE ... WHERE id = ? as one executemany; bind names are prefixed to avoid clashes."""
    if not rows:
        return
    fields = list(fields)
    stmt = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("p_id"))
        .values({name: sa.bindparam(f"p_{name}") for name in fields})
    )
    conn.execute(stmt, [{f"p_{key}": value for key, value in row.items()} for row in rows])


def _insert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) in bulk: COPY on PostgreSQL, else executemany."""
    if rows:
        columns = list(rows[0])
        bulk_insert(conn, table, columns, [[row[name] for name in columns] for row in rows])


def _archive(conn: sa.Connection, table: sa.Table, ids: Sequence[int], now: datetime) -> None:
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        conn.execute(sa.update(table).where(table.c.id.in_(chunk)).values(archived_at=now))


def upsert_meta(conn: sa.Connection, key: str, value: str) -> None:
    """Insert or replace one ``meta`` entry."""
    table = Meta.__table__
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    if conn.dialect.name not in ("postgresql", "sqlite"):
        conn.execute(sa.delete(table).where(table.c.key == key))
        conn.execute(sa.insert(table).values(key=key, value=value))
        return
    stmt = insert(table).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def sync_definitions(
    conn: sa.Connection, okr_set: OkrSet, *, now: datetime | None = None
) -> SyncResult:
    """Bring the stored definitions in line with ``okr_set`` (see the module docstring).

    Args:
        conn: a connection inside a write transaction (the caller commits).
        okr_set: the loaded OKR files.
        now: archive time; defaults to the current time.

    Returns:
        Counts of what changed.

    Raises:
        ConfigError: a cycle or objective is declared twice inconsistently.
    """
    now = now or datetime.now(UTC)
    wanted = _collect(okr_set)
    cycle_ids = _sync_cycles(conn, wanted)
    obj_counts = _sync_objectives(conn, wanted, cycle_ids, now)
    objective_ids = {
        (cycle_name, key): oid
        for oid, cycle_name, key in conn.execute(
            sa.select(Objective.id, Cycle.name, Objective.key).join(
                Cycle, Cycle.id == Objective.cycle_id
            )
        )
    }
    kr_counts = _sync_key_results(conn, wanted, objective_ids, now)
    upsert_meta(conn, FINGERPRINT_KEY, okr_set.fingerprint)
    return SyncResult(
        **kr_counts,
        objectives_added=obj_counts["added"],
        objectives_updated=obj_counts["updated"],
        objectives_archived=obj_counts["archived"],
    )


def _sync_cycles(conn: sa.Connection, wanted: _Wanted) -> dict[str, int]:
    table = Cycle.__table__
    stmt = sa.select(Cycle.id, Cycle.name, Cycle.start_at, Cycle.end_at, Cycle.timezone)
    existing = {row.name: row for row in conn.execute(stmt)}
    inserts, updates = [], []
    for name, cycle in wanted.cycles.items():
        values = {
            "start_at": cycle.start_at(),
            "end_at": cycle.end_at(),
            "timezone": cycle.timezone,
        }
        row = existing.get(name)
        if row is None:
            inserts.append({"name": name, **values})
        elif (row.start_at, row.end_at, row.timezone) != tuple(values.values()):
            updates.append({"id": row.id, **values})
    if inserts:
        conn.execute(sa.insert(table), inserts)
    _bulk_update(conn, table, ("start_at", "end_at", "timezone"), updates)
    return {name: cid for cid, name in conn.execute(sa.select(Cycle.id, Cycle.name))}


def _sync_objectives(
    conn: sa.Connection, wanted: _Wanted, cycle_ids: dict[str, int], now: datetime
) -> dict[str, int]:
    table = Objective.__table__
    columns = [Objective.id, Objective.cycle_id, Objective.key, Objective.archived_at]
    columns += [getattr(Objective, name) for name in _OBJECTIVE_FIELDS]
    existing = {(row.cycle_id, row.key): row for row in conn.execute(sa.select(*columns))}
    inserts, updates = [], []
    for (cycle_name, key), objective in wanted.objectives.items():
        values = _objective_values(objective)
        row = existing.pop((cycle_ids[cycle_name], key), None)
        if row is None:
            inserts.append(
                {"cycle_id": cycle_ids[cycle_name], "key": key, "archived_at": None, **values}
            )
        elif row.archived_at is not None or any(getattr(row, f) != v for f, v in values.items()):
            updates.append({"id": row.id, "archived_at": None, **values})
    gone = [row.id for row in existing.values() if row.archived_at is None]
    _insert(conn, table, inserts)
    _bulk_update(conn, table, (*_OBJECTIVE_FIELDS, "archived_at"), updates)
    _archive(conn, table, gone, now)
    return {"added": len(inserts), "updated": len(updates), "archived": len(gone)}


def _sync_key_results(
    conn: sa.Connection,
    wanted: _Wanted,
    objective_ids: dict[tuple[str, str], int],
    now: datetime,
) -> dict[str, int]:
    table = KeyResult.__table__
    existing = {
        (row.objective_id, row.key): row
        for row in conn.execute(
            sa.select(
                KeyResult.id,
                KeyResult.objective_id,
                KeyResult.key,
                KeyResult.definition_hash,
                KeyResult.archived_at,
                KeyResult.baseline_auto,
                KeyResult.baseline,
            )
        )
    }
    inserts, updates = [], []
    unchanged = restored = 0
    for (cycle_name, objective_key, key), kr in wanted.key_results.items():
        objective_id = objective_ids[(cycle_name, objective_key)]
        row = existing.pop((objective_id, key), None)
        if row is None:
            values = {"objective_id": objective_id, "key": key, "archived_at": None}
            inserts.append({**values, **_kr_values(kr, None)})
            continue
        definition_hash = kr_definition_hash(kr)
        if row.definition_hash == definition_hash and row.archived_at is None:
            unchanged += 1
            continue
        # An automatic baseline is measured once per cycle: editing the title must not
        # throw it away.
        kept = row.baseline if row.baseline_auto else None
        updates.append({"id": row.id, "archived_at": None, **_kr_values(kr, kept, definition_hash)})
        restored += row.archived_at is not None
    gone = [row.id for row in existing.values() if row.archived_at is None]
    _insert(conn, table, inserts)
    _bulk_update(conn, table, (*_KR_FIELDS, "archived_at"), updates)
    _archive(conn, table, gone, now)
    return {
        "added": len(inserts),
        "updated": len(updates),
        "archived": len(gone),
        "unchanged": unchanged,
        "restored": restored,
    }
