"""Persistence of alerting: alert states, alert records, silences, and the reads around them.

Each function takes a connection; :class:`okr_store.store.Store` owns the transactions.
Writes are batched (executemany, COPY for the records on PostgreSQL), never one statement
per KR.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from okr_pipeline.okr_core.alerting.messages import PLAIN_DIGITS, decimal_text
from okr_pipeline.okr_core.alerting.model import AlertKind, AlertPhase, AlertRecord, AlertState
from okr_pipeline.okr_core.alerting.model import Silence as SilenceValue
from okr_pipeline.okr_store.bulk import bulk_insert
from okr_pipeline.okr_store.models import Alert, KeyResult, Measurement, Objective, Silence
from okr_pipeline.okr_store.models import AlertState as AlertStateRow
from okr_pipeline.okr_store.queries import id_filters
from okr_pipeline.okr_store.records import AlertRow, MeasurementRow

#: Bound on the keys in one IN list or one executemany batch.
CHUNK = 1000

_STATE_COLUMNS = (
    "kr_id", "kind", "phase", "active_count", "active_since", "fired_at", "last_sent_at",
)  # fmt: skip
_ALERT_COLUMNS = (
    "run_id", "kr_id", "kind", "transition", "route", "channel", "delivery", "payload",
    "error", "created_at",
)  # fmt: skip

StateKey = tuple[int, AlertKind]


def _to_state(row: sa.Row[Any]) -> AlertState:
    return AlertState(
        kr_id=row.kr_id,
        kind=cast(AlertKind, row.kind),
        phase=cast(AlertPhase, row.phase),
        active_count=row.active_count,
        active_since=row.active_since,
        fired_at=row.fired_at,
        last_sent_at=row.last_sent_at,
    )


def alert_states(
    conn: sa.Connection, kr_ids: Iterable[int] | None = None
) -> dict[StateKey, AlertState]:
    """Return the stored (pending or firing) alert states, by ``(kr_id, kind)``.

    Args:
        conn: connection.
        kr_ids: only these KRs; every stored state if None.
    """
    table = AlertStateRow.__table__
    if kr_ids is None:
        rows = list(conn.execute(sa.select(table)))
    else:
        ids = sorted(set(kr_ids))
        rows = []
        for among in id_filters(conn, table.c.kr_id, ids):
            rows.extend(conn.execute(sa.select(table).where(among)))
    states = [_to_state(row) for row in rows]
    return {(state.kr_id, state.kind): state for state in states}


def _jsonable(value: Any) -> Any:
    # Payloads are built by the alerter from evaluated KRs: exact decimals and times are
    # expected there, and JSON has neither. Decimals become text to stay exact.
    if isinstance(value, Decimal):
        if value.is_finite() and abs(value.adjusted()) > PLAIN_DIGITS:
            return decimal_text(value)  # exact, scientific: never a billion digits
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"alert payload value of type {type(value).__name__} is not JSON: {value!r}")


def payload_json(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` as plain JSON values (Decimal → text, datetime → ISO 8601).

    Raises:
        TypeError: a value JSON cannot represent.
        ValueError: NaN or infinity.
    """
    result: dict[str, Any] = json.loads(json.dumps(payload, default=_jsonable, allow_nan=False))
    return result


def _check_states(states: Mapping[StateKey, AlertState], cleared: Sequence[StateKey]) -> None:
    for key, state in states.items():
        if key != (state.kr_id, state.kind):
            raise ValueError(
                f"alert state keyed {key!r} is for ({state.kr_id}, {state.kind!r}); "
                "key each state by its own (kr_id, kind)"
            )
    both = set(states).intersection(cleared)
    if both:
        raise ValueError(
            f"alert states {sorted(both)!r} are both updated and cleared; pass each key once"
        )


def apply_alert_step(
    conn: sa.Connection,
    states: Mapping[StateKey, AlertState],
    cleared: Iterable[StateKey],
    records: Sequence[AlertRecord],
) -> None:
    """Upsert ``states``, delete ``cleared``, insert ``records``, in ``conn``'s transaction.

    Raises:
        ValueError: a state is keyed by another (kr_id, kind) than its own, a key is both
            updated and cleared, or a record's payload holds NaN.
        TypeError: a record's payload holds a value JSON cannot represent.
        sqlalchemy.exc.StatementError: a row is refused (unknown KR or run, unknown kind,
            naive datetime, ...). The caller's transaction then stores nothing.
    """
    cleared = list(dict.fromkeys(cleared))
    _check_states(states, cleared)
    alert_rows = [
        (r.run_id, r.kr_id, r.kind, r.transition, r.route, r.channel, r.delivery,
         payload_json(r.payload), r.error, r.created_at)
        for r in records
    ]  # fmt: skip
    _upsert_states(conn, list(states.values()))
    _delete_states(conn, cleared)
    bulk_insert(conn, Alert.__table__, _ALERT_COLUMNS, alert_rows)


def _upsert_states(conn: sa.Connection, states: Sequence[AlertState]) -> None:
    if not states:
        return
    table = AlertStateRow.__table__
    rows = [{name: getattr(state, name) for name in _STATE_COLUMNS} for state in states]
    if conn.dialect.name not in ("postgresql", "sqlite"):
        _delete_states(conn, [(state.kr_id, state.kind) for state in states])
        for start in range(0, len(rows), CHUNK):
            conn.execute(sa.insert(table), rows[start : start + CHUNK])
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["kr_id", "kind"],
        set_={name: stmt.excluded[name] for name in _STATE_COLUMNS[2:]},
    )
    for start in range(0, len(rows), CHUNK):
        conn.execute(stmt, rows[start : start + CHUNK])


def _delete_states(conn: sa.Connection, keys: Sequence[StateKey]) -> None:
    if not keys:
        return
    table = AlertStateRow.__table__
    stmt = sa.delete(table).where(
        table.c.kr_id == sa.bindparam("p_kr_id"), table.c.kind == sa.bindparam("p_kind")
    )
    params = [{"p_kr_id": kr_id, "p_kind": kind} for kr_id, kind in keys]
    for start in range(0, len(params), CHUNK):
        conn.execute(stmt, params[start : start + CHUNK])


# -- silences ----------------------------------------------------------------------------


def _to_silence(row: sa.Row[Any]) -> SilenceValue:
    return SilenceValue(
        id=row.id, target=row.target, until=row.until, reason=row.reason,
        created_at=row.created_at,
    )  # fmt: skip


def add_silence(
    conn: sa.Connection, target: str, until: datetime, reason: str, now: datetime
) -> SilenceValue:
    """Store a new silence and return it.

    Raises:
        ValueError: an empty target, or ``until`` not after ``now``.
    """
    target = target.strip()
    if not target:
        raise ValueError("a silence needs a target: 'objective' or 'objective/kr'")
    if until <= now:
        raise ValueError(
            f"a silence must end after it starts: until {until.isoformat()} is not after "
            f"{now.isoformat()}"
        )
    values = {"target": target, "until": until, "reason": reason, "created_at": now}
    result = conn.execute(sa.insert(Silence.__table__).values(**values))
    silence_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    assert isinstance(silence_id, int)
    row = conn.execute(sa.select(Silence.__table__).where(Silence.id == silence_id)).one()
    return _to_silence(row)


def silences(
    conn: sa.Connection, now: datetime | None = None, include_expired: bool = False
) -> list[SilenceValue]:
    """Return the silences not removed, oldest first; only those active at ``now`` if given.

    Args:
        conn: connection.
        now: when set (and ``include_expired`` is False), only silences with ``until``
            after ``now``.
        include_expired: also return silences whose ``until`` has passed.
    """
    table = Silence.__table__
    stmt = sa.select(table).where(table.c.removed_at.is_(None))
    if now is not None and not include_expired:
        stmt = stmt.where(table.c.until > now)
    return [_to_silence(row) for row in conn.execute(stmt.order_by(table.c.id))]


def remove_silence(conn: sa.Connection, silence_id: int, now: datetime) -> bool:
    """Mark an active silence removed at ``now``; False if there is no such active silence."""
    table = Silence.__table__
    result = conn.execute(
        sa.update(table)
        .where(table.c.id == silence_id, table.c.removed_at.is_(None), table.c.until > now)
        .values(removed_at=now)
    )
    return result.rowcount == 1


# -- reads -------------------------------------------------------------------------------


def recent_alerts(conn: sa.Connection, limit: int = 50, ref: str | None = None) -> list[AlertRow]:
    """Return the latest ``limit`` alert records, newest first.

    Args:
        conn: connection.
        limit: at most this many.
        ref: only this KR (``"objective/kr"``), or every KR of an objective (``"objective"``);
            objective ids repeat across cycles, so every cycle's match is included.
    """
    table = Alert.__table__
    stmt = (
        sa.select(
            table.c.id,
            table.c.created_at,
            table.c.run_id,
            (Objective.key + "/" + KeyResult.key).label("ref"),
            table.c.kind,
            table.c.transition,
            table.c.route,
            table.c.channel,
            table.c.delivery,
            table.c.error,
            table.c.payload,
        )
        .join(KeyResult, KeyResult.id == table.c.kr_id)
        .join(Objective, Objective.id == KeyResult.objective_id)
    )
    if ref is not None:
        objective_key, _, kr_key = ref.partition("/")
        stmt = stmt.where(Objective.key == objective_key)
        if kr_key:
            stmt = stmt.where(KeyResult.key == kr_key)
    stmt = stmt.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
    return [AlertRow(**row._asdict()) for row in conn.execute(stmt)]


def kr_history(conn: sa.Connection, kr_id: int, limit: int = 20) -> list[MeasurementRow]:
    """Return the KR's latest ``limit`` measurements (any outcome), newest first."""
    stmt = (
        sa.select(
            Measurement.measured_at,
            Measurement.as_of,
            Measurement.outcome,
            Measurement.value,
            Measurement.error_message,
            Measurement.kind,
            Measurement.author,
            Measurement.note,
            Measurement.run_id,
        )
        .where(Measurement.kr_id == kr_id)
        .order_by(Measurement.measured_at.desc(), Measurement.id.desc())
        .limit(limit)
    )
    return [MeasurementRow(**row._asdict()) for row in conn.execute(stmt)]
