"""Many KRs' pages at once (the report): the same pages as ``kr_detail``, read in bulk.

``kr_detail`` reads one KR in about seven queries; a report of 10,000 KRs would make
70,000. Here each kind of record (measurements and check-ins, evaluations, notes, alert
states, alerts, silences) is read for every KR asked for in one query (one per 1,000 KRs
where an ``IN`` list bounds it), grouped by KR in Python, and each page assembled by the
same :func:`okr_pipeline.web.kr_detail.assemble` as the KR page's, so the two cannot differ.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from okr_pipeline.okr_core.alerting.model import AlertState
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_core.words import suggest
from okr_pipeline.okr_store.models import Alert, Evaluation, KeyResult, Objective
from okr_pipeline.okr_store.records import AlertRow as StoredAlert
from okr_pipeline.okr_store.records import NoteRow as StoredNote
from okr_pipeline.okr_store.records import StoredMeasurement
from okr_pipeline.okr_store.store import Store
from okr_pipeline.web import queries
from okr_pipeline.web.kr_detail import (
    ALERTS_SHOWN,
    HISTORY_SHOWN,
    KrRecords,
    UnknownKrError,
    assemble,
)
from okr_pipeline.web.model import KrDetail

__all__ = ["kr_details"]

#: Bound on the values in one IN list (SQLite and drivers cap parameters per statement).
IN_CHUNK = 1000


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


def _evaluations(store: Store, kr_ids: Sequence[int]) -> dict[int, list[Any]]:
    # Each KR's latest HISTORY_SHOWN, newest first: the rows ``queries.kr_evaluations`` gives.
    table = Evaluation.__table__
    result: defaultdict[int, list[Any]] = defaultdict(list)
    with store.engine.connect() as conn:
        for ids in _chunks(sorted(kr_ids)):
            stmt = (
                sa.select(table)
                .where(table.c.kr_id.in_(ids))
                .order_by(table.c.kr_id, table.c.evaluated_at.desc())
            )
            for row in conn.execute(stmt):
                rows = result[row.kr_id]
                if len(rows) < HISTORY_SHOWN:
                    rows.append(row)
    return result


def _alerts(store: Store, refs: Iterable[str]) -> dict[str, list[StoredAlert]]:
    # Each ref's latest ALERTS_SHOWN, newest first, matched by objective and KR key in any
    # cycle: what ``Store.recent_alerts(ref=...)`` gives one KR. A window function numbers
    # each KR's alerts so that a KR with thousands of them sends only its latest.
    wanted = {tuple(ref.split("/", 1)) for ref in refs}
    table = Alert.__table__
    # The stored alert's fields are the table's columns, its ref aside.
    columns = [field.name for field in dataclasses.fields(StoredAlert) if field.name != "ref"]
    rank = (
        sa.func.row_number()
        .over(
            partition_by=(Objective.key, KeyResult.key),
            order_by=(table.c.created_at.desc(), table.c.id.desc()),
        )
        .label("rank")
    )
    result: defaultdict[str, list[StoredAlert]] = defaultdict(list)
    with store.engine.connect() as conn:
        for keys in _chunks(sorted({objective for objective, _ in wanted})):
            ranked = (
                sa.select(
                    *(table.c[name] for name in columns),
                    Objective.key.label("objective_key"),
                    KeyResult.key.label("kr_key"),
                    rank,
                )
                .join(KeyResult, KeyResult.id == table.c.kr_id)
                .join(Objective, Objective.id == KeyResult.objective_id)
                .where(Objective.key.in_(keys))
                .subquery()
            )
            stmt = (
                sa.select(ranked)
                .where(ranked.c.rank <= ALERTS_SHOWN)
                .order_by(ranked.c.created_at.desc(), ranked.c.id.desc())
            )
            for row in conn.execute(stmt):
                if (row.objective_key, row.kr_key) in wanted:
                    ref = f"{row.objective_key}/{row.kr_key}"
                    values = {name: getattr(row, name) for name in columns}
                    result[ref].append(StoredAlert(ref=ref, **values))
    return result


def kr_details(
    store: Store,
    refs_or_krs: Sequence[str | queries.KrDefinitionRow],
    *,
    cycle: str,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> list[KrDetail]:
    """The pages of many KRs of one cycle, each equal to what ``kr_detail`` gives it.

    Args:
        store: The store to read.
        refs_or_krs: The KRs, as ``objective/kr`` or as definitions already read (from
            :func:`okr_pipeline.web.queries.cycle_key_results`: no query for them).
        cycle: The cycle the KRs are in.
        settings: For connections' masked URLs and the staleness rule (optional).
        now: The time to judge at (default: now).

    Returns:
        One page per KR, in the order asked.

    Raises:
        UnknownKrError: A ref names no active KR of ``cycle``.
    """
    now = now or datetime.now(UTC)
    named = [item for item in refs_or_krs if isinstance(item, str)]
    known = queries.cycle_key_results(store, cycle) if named else {}
    missing = [ref for ref in named if ref not in known]
    if missing:
        hint = suggest(missing[0], known)
        raise UnknownKrError(f"No key result named '{missing[0]}' in cycle '{cycle}'.{hint}")
    krs = [known[item] if isinstance(item, str) else item for item in refs_or_krs]
    if not krs:
        return []
    ids = sorted({kr.kr_id for kr in krs})
    measurements: defaultdict[int, list[StoredMeasurement]] = defaultdict(list)
    for measurement in store.measurements(ids):
        measurements[measurement.kr_id].append(measurement)
    notes: defaultdict[int, list[StoredNote]] = defaultdict(list)
    for note in store.notes(ids):
        notes[note.kr_id].append(note)
    states: defaultdict[int, list[AlertState]] = defaultdict(list)
    for (kr_id, _), state in store.alert_states(ids).items():
        states[kr_id].append(state)
    evaluations = _evaluations(store, ids)
    alerts = _alerts(store, {kr.ref for kr in krs})
    silences = store.silences(now, include_expired=True)
    return [
        assemble(
            kr,
            KrRecords(
                measurements=measurements.get(kr.kr_id, []),
                evaluations=evaluations.get(kr.kr_id, []),
                notes=notes.get(kr.kr_id, []),
                alert_states=states.get(kr.kr_id, []),
                alerts=alerts.get(kr.ref, []),
                silences=silences,
            ),
            settings=settings,
            now=now,
        )
        for kr in krs
    ]
