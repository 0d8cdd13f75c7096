"""What one run did: the summary the CLI prints and the rows of its artifact."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult
from okr_pipeline.run.alerting import AlertSummary

#: Worst first: the order of a run's rows.
SEVERITY = {"error": 0, "off_track": 1, "stale": 2, "at_risk": 3, "no_data": 4, "on_track": 5}


class RunSummary:
    """What one run did, for the CLI and for callers of the flow.

    A plain class, not a dataclass, on purpose: Prefect walks every item of a dataclass
    (or list) a flow returns, which costs a noticeable share of a 10,000-KR run.

    Attributes:
        run_id: The run's id in the store (None for a dry run).
        as_of: The time the run evaluated.
        active: Active KRs in the store.
        measured: KRs measured in this run.
        statuses: How many KRs got each status.
        failed: ``(objective/kr, message)`` of each KR whose source failed.
        dry_run: True when nothing was stored.
        rows: One plain row per measured KR, worst status first.
        definitions_synced: True when changed OKR files were synced into the store.
        alerts: What the alert step sent, silenced, held back or failed to send.
    """

    def __init__(
        self,
        *,
        run_id: int | None,
        as_of: datetime,
        active: int,
        measured: int,
        statuses: dict[str, int],
        failed: list[tuple[str, str]],
        dry_run: bool,
        rows: list[dict[str, Any]],
        definitions_synced: bool,
        alerts: AlertSummary | None = None,
    ) -> None:
        self.run_id = run_id
        self.as_of = as_of
        self.active = active
        self.measured = measured
        self.statuses = statuses
        self.failed = failed
        self.dry_run = dry_run
        self.rows = rows
        self.definitions_synced = definitions_synced
        self.alerts = alerts or AlertSummary()

    @property
    def errors(self) -> int:
        """How many KRs' sources failed in this run."""
        return len(self.failed)

    def __repr__(self) -> str:
        return (
            f"RunSummary(run_id={self.run_id}, measured={self.measured}/{self.active}, "
            f"statuses={self.statuses}, errors={self.errors})"
        )


def result_rows(
    krs: Sequence[StoredKeyResult], evaluations: Sequence[EvaluationRecord]
) -> list[dict[str, Any]]:
    """One plain row per evaluated KR, worst status first."""
    by_id = {kr.kr_id: kr for kr in krs}
    rows: list[dict[str, Any]] = [
        {
            "objective": by_id[ev.kr_id].objective_key,
            "id": by_id[ev.kr_id].kr_key,
            "value": None if ev.value is None else str(ev.value),
            "target": None
            if by_id[ev.kr_id].target_value is None
            else str(by_id[ev.kr_id].target_value),
            "progress": None if ev.progress is None else round(ev.progress, 4),
            "score": None if ev.score is None else round(ev.score, 4),
            "status": ev.status,
            "reason": ev.reason,
        }
        for ev in evaluations
    ]
    rows.sort(key=lambda r: (SEVERITY.get(r["status"], 9), r["objective"], r["id"]))
    return rows
