"""Builders for the alerting tests: KRs, and a runner that steps the engine over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from okr_pipeline.okr_core.alerting.engine import StateKey, step
from okr_pipeline.okr_core.alerting.model import (
    AlertPolicy,
    AlertState,
    KrAlertInput,
    Notification,
    Silence,
)

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def policy(**fields: Any) -> AlertPolicy:
    return AlertPolicy.model_validate(fields)


def kr(
    status: str = "on_track",
    *,
    kr_id: int = 1,
    ref: str | None = None,
    policy: AlertPolicy | None = None,
    connection: str | None = "warehouse",
    connection_owner: str | None = None,
    owner: str = "maya@example.com",
    error: str | None = None,
    **fields: Any,
) -> KrAlertInput:
    ref = ref or f"obj/kr{kr_id}"
    values: dict[str, Any] = {
        "title": f"KR {kr_id}",
        "unit": "listeners",
        "reason": f"status {status}",
        "value": Decimal(310),
        "target": Decimal(1000),
        "progress": 0.31,
        "expected_progress": 0.44,
        "forecast_value": None,
        "forecast_score": None,
    }
    values.update(fields)
    return KrAlertInput(
        kr_id=kr_id,
        ref=ref,
        objective_key=ref.split("/", 1)[0],
        owner=owner,
        status=status,
        error=error if error is not None or status != "error" else "HTTP 503",
        connection=connection,
        connection_owner=connection_owner,
        policy=policy or AlertPolicy(),
        **values,
    )


@dataclass
class Runner:
    """Steps the engine like the flow does: stores states, deletes cleared ones."""

    now: datetime = T0
    states: dict[StateKey, AlertState] = field(default_factory=dict)
    silences: list[Silence] = field(default_factory=list)
    log: list[list[Notification]] = field(default_factory=list)

    def run(self, krs: Sequence[KrAlertInput], *, at: datetime | None = None) -> list[Notification]:
        if at is not None:
            self.now = at
        result = step(self.states, krs, now=self.now, silences=self.silences)
        for key in result.cleared:
            assert key not in result.states
            del self.states[key]
        self.states.update(result.states)
        self.log.append(result.notifications)
        return result.notifications

    def advance(self, delta: timedelta = HOUR) -> None:
        self.now += delta


def brief(notifications: Sequence[Notification]) -> list[tuple[str, str, str]]:
    """(ref, kind, transition) of each notification, to compare with expectations."""
    return [(n.kr.ref, n.kind, n.transition) for n in notifications]
