"""``okr explain KR --json``: everything the explanation shows, for programs.

The shape (documented in the README, "Commands"): ``kr`` (the definition), ``status``
(where it stands as of now, or null before its first run), ``history`` (its latest
measurements, newest first), ``alert_states``, ``silences`` and ``alerts`` (the latest
records). Values are exact decimals as strings, like every ``--json``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from okr_pipeline.cli.json_output import alert_json, silence_json
from okr_pipeline.cli.reading import open_store_to_read
from okr_pipeline.cli.render import judged
from okr_pipeline.cli.suggest import resolve_kr
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.records import MeasurementRow, StatusRow, StoredKeyResult

#: As many as the explanation shows.
HISTORY_SHOWN = 10
ALERTS_SHOWN = 5


def definition_json(kr: StoredKeyResult) -> dict[str, Any]:
    """The KR's definition as stored.

    The source's settings are left out (they may name secrets); its type and connection
    are in.
    """
    return {
        "ref": kr.ref,
        "cycle": kr.cycle,
        "objective": kr.objective_key,
        "id": kr.kr_key,
        "title": kr.title,
        "unit": kr.unit,
        "owner": kr.owner,
        "objective_type": kr.objective_type,
        "success_level": kr.success_level,
        "kind": kr.kind,
        "baseline": kr.baseline,
        "baseline_auto": kr.baseline_auto,
        "target": kr.target_value,
        "target_as_written": kr.target,
        "floor": kr.floor,
        "weight": kr.weight,
        "schedule": kr.schedule,
        "source_type": kr.source_type,
        "connection": kr.source.get("connection"),
    }


def standing_json(row: StatusRow) -> dict[str, Any]:
    """Where the KR stands: its latest evaluation, judged as of now."""
    return {
        "status": row.status,
        "reason": row.reason,
        "value": row.value,
        "as_of": row.evaluated_at,
        "measured_at": row.measured_at,
        "progress": row.progress,
        "expected_progress": row.expected_progress,
        "score": row.score,
        "forecast_value": row.forecast_value,
        "forecast_low": row.forecast_low,
        "forecast_high": row.forecast_high,
        "forecast_score": row.forecast_score,
        "error": row.error_message,
        "last_good_value": row.last_good_value,
        "last_good_at": row.last_good_at,
    }


def measurement_json(row: MeasurementRow) -> dict[str, Any]:
    """One measurement: what it describes, when it was taken, and its value or error."""
    return {
        "as_of": row.as_of,
        "measured_at": row.measured_at,
        "outcome": row.outcome,
        "value": row.value,
        "error": row.error_message,
        "kind": row.kind,
        "author": row.author,
        "note": row.note,
        "run_id": row.run_id,
    }


def explain_json(settings: Settings, name: str) -> dict[str, Any]:
    """The explanation of the KR called ``name``.

    Raises:
        ConfigError: ``name`` matches no KR (with the closest names), or several.
    """
    now = datetime.now(UTC)
    store = open_store_to_read(settings)
    try:
        kr = resolve_kr(name, store.active_key_results())
        rows = judged(
            [r for r in store.latest_status() if r.kr_id == kr.kr_id],
            now,
            settings.stale_after_periods,
        )
        history = store.kr_history(kr.kr_id, limit=HISTORY_SHOWN)
        states = store.alert_states([kr.kr_id])
        recent = store.recent_alerts(limit=ALERTS_SHOWN, ref=kr.ref)
        silences = [s for s in store.silences(now) if s.matches(kr.ref, now)]
    finally:
        store.close()
    row = rows[0] if rows and rows[0].status is not None else None
    return {
        "kr": definition_json(kr),
        "status": None if row is None else standing_json(row),
        "history": [measurement_json(m) for m in history],
        "alert_states": [
            {
                "kind": state.kind,
                "phase": state.phase,
                "active_since": state.active_since,
                "active_count": state.active_count,
                "fired_at": state.fired_at,
                "last_sent_at": state.last_sent_at,
            }
            for _, state in sorted(states.items())
        ],
        "silences": [silence_json(s, now) for s in silences],
        "alerts": [alert_json(a) for a in recent],
    }
