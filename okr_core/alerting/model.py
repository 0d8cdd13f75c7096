"""The values the alerter works with, shared by the state machine, the store and the senders.

An *alert* is one condition on one KR (``kind``): ``off_track``, ``stale``, or
``source_failing``. Each has a state that moves normal → pending → firing and back; a
*notification* is one transition of one alert in one run (``firing``, ``repeat``,
``resolved``), and an *alert record* is what the store keeps of every notification: sent,
silenced, inhibited, failed to send, recorded (its route has no channel: kept, sent
nowhere), or only computed in a dry run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

AlertKind = Literal["off_track", "source_failing", "stale"]
AlertPhase = Literal["pending", "firing"]  # "normal" is the absence of a stored state
Transition = Literal["firing", "repeat", "resolved"]
Delivery = Literal["sent", "silenced", "inhibited", "failed", "recorded", "dry_run"]
MissingPolicy = Literal["keep", "alert", "normal"]

ALERT_KINDS: tuple[AlertKind, ...] = ("off_track", "source_failing", "stale")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def _parse_duration(value: Any) -> Any:
    # "30m", "6h", "3d", "1w" as people write them; anything else goes to pydantic
    # (seconds as a number, ISO 8601 "P1D", "HH:MM:SS").
    if isinstance(value, str) and (match := _DURATION.match(value)):
        try:
            return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
        except OverflowError:  # beyond timedelta's range: a mistake in the file, not a bug
            raise ValueError(
                f"duration {value.strip()!r} is too long; write at most 999999999d"
            ) from None
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class AlertPolicy(BaseModel):
    """How alerts of one KR behave; defaults a team would accept on day one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Send alerts for this KR at all.")
    pending_evaluations: int = Field(
        2, ge=1, le=1000, description="Evaluations the condition must hold before it fires."
    )
    pending_for: Duration = Field(
        timedelta(0), description="And for at least this long (e.g. 6h); 0 to count only."
    )
    repeat_interval: Duration = Field(
        timedelta(days=3), description="While firing, send again after this long."
    )
    resolve_when: Literal["on_track", "at_risk"] = Field(
        "on_track",
        description="Hysteresis: an off-track alert resolves only once the KR is back on "
        "track (default), or already when it is merely at risk.",
    )
    no_data: MissingPolicy = Field(
        "keep", description="no_data: keep the last state (default), alert, or count as normal."
    )
    error: MissingPolicy = Field(
        "keep", description="error: keep the last state (default), alert, or count as normal."
    )


class AlertPolicyOverride(BaseModel):
    """The ``alerts:`` key of a KR in an OKR file: any field of AlertPolicy, to override."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    pending_evaluations: int | None = Field(None, ge=1, le=1000)
    pending_for: Duration | None = None
    repeat_interval: Duration | None = None
    resolve_when: Literal["on_track", "at_risk"] | None = None
    no_data: MissingPolicy | None = None
    error: MissingPolicy | None = None

    def apply(self, base: AlertPolicy) -> AlertPolicy:
        """``base`` with the fields set here replaced."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


@dataclass(frozen=True)
class AlertState:
    """Where one alert of one KR stands; a KR with no stored state for a kind is normal.

    Attributes:
        kr_id: The KR (store id).
        kind: Which condition.
        phase: ``pending`` (condition holds, not long enough yet) or ``firing``.
        active_count: Consecutive evaluations with the condition holding.
        active_since: When the condition started holding.
        fired_at: When it fired (None while pending).
        last_sent_at: When a notification of it was last sent (or would have been).
    """

    kr_id: int
    kind: AlertKind
    phase: AlertPhase
    active_count: int
    active_since: datetime
    fired_at: datetime | None = None
    last_sent_at: datetime | None = None


@dataclass(frozen=True)
class KrAlertInput:
    """What the alerter needs to know of one KR evaluated in this run."""

    kr_id: int
    ref: str  # "objective/kr"
    objective_key: str
    title: str
    owner: str
    unit: str
    status: str
    reason: str
    value: Decimal | None
    target: Decimal | None
    progress: float | None
    expected_progress: float | None
    forecast_value: Decimal | None
    forecast_score: float | None
    error: str | None
    connection: str | None  # the source's connection (or host), for source alerts
    connection_owner: str | None  # who owns that connection (the data team)
    policy: AlertPolicy = field(default_factory=AlertPolicy)


@dataclass(frozen=True)
class Silence:
    """A silence: alerts of a KR (``objective/kr``) or an objective are recorded, not sent."""

    id: int
    target: str
    until: datetime
    reason: str
    created_at: datetime

    def matches(self, ref: str, now: datetime) -> bool:
        """True when this silence covers the KR ``ref`` at ``now``."""
        if now >= self.until:
            return False
        return self.target == ref or self.target == ref.split("/", 1)[0]


@dataclass(frozen=True)
class Notification:
    """One transition of one alert in one run, before it is routed and sent.

    Attributes:
        kind: Which condition.
        transition: ``firing``, ``repeat`` or ``resolved``.
        kr: The KR as evaluated in this run.
        owner: Who is told: the KR's owner, or the connection's owner for source alerts.
        delivery: ``sent`` unless silenced or inhibited (the senders may turn it to failed).
        silence_id: The silence that holds it back, if any.
    """

    kind: AlertKind
    transition: Transition
    kr: KrAlertInput
    owner: str
    delivery: Delivery = "sent"
    silence_id: int | None = None


@dataclass(frozen=True)
class AlertRecord:
    """What the store keeps of every notification: sent, silenced, inhibited, failed or recorded."""

    kr_id: int
    kind: AlertKind
    transition: Transition
    route: str
    channel: str  # the channel's redacted name; "" when nothing was sent
    delivery: Delivery
    payload: dict[str, Any]
    created_at: datetime
    error: str | None = None
    run_id: int | None = None
