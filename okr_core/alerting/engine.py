"""The alert state machine: one pure step per run, Grafana alert rules' semantics.

Each KR has three alerts (``off_track``, ``stale``, ``source_failing``). Per run,
:func:`step` decides for each whether its condition *holds*, *clears*, or is *kept*
(:func:`condition`), then moves its state::

    normal ──holds──▶ pending ──(pending_evaluations AND pending_for)──▶ firing  [firing]
      ▲                  │ clears (silently)                              │ holds, repeat_interval
      └──────────────────┘◀────────────── clears ─────────────────────────┘ since last_sent_at
                                          [resolved]                       [repeat]

Conditions (docs/alerting.md, "Alerts and their conditions"):

* ``off_track`` holds on ``off_track``, clears on ``on_track``. ``at_risk`` clears it,
  except that a *firing* alert with ``resolve_when: on_track`` (hysteresis) stays firing.
  ``no_data``/``error`` follow the policy's ``no_data``/``error`` (keep, alert, normal).
  ``stale`` says the value is missing for long: it follows the ``error`` policy when the
  source is failing (``error`` set) and the ``no_data`` policy otherwise, so that a KR
  going stale never sends "off track resolved".
* ``stale`` holds on ``stale``, clears on a scored status, and ``no_data``/``error``
  follow the policy as above.
* ``source_failing`` holds on ``error``, and on ``stale`` while ``error`` is set (a source
  that keeps failing turns the status stale; it must not resolve the source alert).
  Any other status clears it.
* "keep" leaves the state untouched: no counting, no repeat, no resolve.

Decisions beyond the contract:

* ``last_sent_at`` is set whenever a ``firing`` or ``repeat`` notification is produced,
  whatever its delivery (``sent``, ``silenced`` or ``inhibited``). A silence or an
  inhibition thus stands in for the sending: when it ends, the alert is told at its next
  repeat, not at once, so lifting a silence over many alerts causes no burst (and a
  source outage that ends does not re-announce every KR it inhibited). The repeat
  interval is measured from ``last_sent_at``, else ``fired_at``.
* A notification to send that no channel received is undone by :func:`settle` once the
  senders have tried: an undelivered ``firing`` leaves the alert ``pending`` (with its
  count), so the next run in which the condition still holds fires it again; an
  undelivered ``repeat`` keeps the previous ``last_sent_at``, so it is due again next run;
  an undelivered ``resolved`` keeps the firing state, so the next run in which the
  condition is clear resolves it again. An alert thus counts as firing only once its
  owner was told (or a silence or inhibition stood in for it); a firing that never went
  out and clears gets no resolved message, as nobody was told it fired.
* ``enabled: false`` produces no notification, so ``last_sent_at`` stays as it was;
  states still move. Enabling the policy again on a firing alert sends a ``repeat`` as
  soon as ``repeat_interval`` has passed since it was last sent (or fired).
* A notification both silenced and inhibited is recorded as ``silenced`` (a person
  decided it, and the silence id says who and why).
* Inhibition sees the connections of the KRs given to this step: a firing
  ``source_failing`` alert of a KR not evaluated in this run inhibits nothing.
* Notifications come sorted by KR ref, then kind (then KR id), whatever the input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from okr_pipeline.okr_core.alerting.model import (
    ALERT_KINDS,
    AlertKind,
    AlertPhase,
    AlertState,
    Delivery,
    KrAlertInput,
    MissingPolicy,
    Notification,
    Silence,
    Transition,
)

__all__ = ["StateKey", "StepResult", "condition", "owner_of", "settle", "step"]

StateKey = tuple[int, AlertKind]

_SCORED = frozenset({"on_track", "at_risk", "off_track"})
_MISSING: dict[MissingPolicy, bool | None] = {"keep": None, "alert": True, "normal": False}


@dataclass(frozen=True)
class StepResult:
    """What one run changes.

    Attributes:
        states: The non-normal states of the KRs of this step, after it (changed or not).
        cleared: Keys of stored states that became normal: delete them.
        notifications: The transitions of this run, sorted by KR ref then kind.
    """

    states: dict[StateKey, AlertState] = field(default_factory=dict)
    cleared: list[StateKey] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)


def _missing(kr: KrAlertInput, status: str) -> bool | None:
    policy = kr.policy.error if status == "error" else kr.policy.no_data
    return _MISSING[policy]


def condition(kind: AlertKind, kr: KrAlertInput, phase: AlertPhase | None) -> bool | None:
    """Whether the condition of alert ``kind`` holds for ``kr`` in this run.

    Args:
        kind: Which alert.
        kr: The KR as evaluated in this run.
        phase: The alert's current phase (None when normal), for hysteresis.

    Returns:
        True (holds), False (clears), or None (keep: leave the state untouched).
    """
    status = kr.status
    if kind == "source_failing":
        if status == "error" or (status == "stale" and kr.error is not None):
            return True
        return False if status in _SCORED or status in ("no_data", "stale") else None
    if kind == "off_track":
        if status == "off_track":
            return True
        if status == "on_track":
            return False
        if status == "at_risk":
            return phase == "firing" and kr.policy.resolve_when == "on_track"
        if status == "stale":
            return _missing(kr, "error" if kr.error is not None else "no_data")
    else:  # stale
        if status == "stale":
            return True
        if status in _SCORED:
            return False
    if status in ("no_data", "error"):
        return _missing(kr, status)
    return None  # a status this version does not know: change nothing


def owner_of(kind: AlertKind, kr: KrAlertInput) -> str:
    """Who is told of alert ``kind``: the connection's owner for source alerts, else the KR's."""
    if kind == "source_failing" and kr.connection_owner:
        return kr.connection_owner
    return kr.owner


def _advance(
    state: AlertState | None, holds: bool | None, kr: KrAlertInput, kind: AlertKind, now: datetime
) -> tuple[AlertState | None, Transition | None]:
    if holds is None:
        return state, None
    if not holds:
        if state is not None and state.phase == "firing":
            return None, "resolved"
        return None, None
    policy = kr.policy
    if state is None:
        state = AlertState(kr.kr_id, kind, "pending", 1, now)
    else:
        state = replace(state, active_count=state.active_count + 1)
    if state.phase == "pending":
        if (
            state.active_count >= policy.pending_evaluations
            and now - state.active_since >= policy.pending_for
        ):
            return replace(state, phase="firing", fired_at=now), "firing"
        return state, None
    last = state.last_sent_at or state.fired_at or state.active_since
    if now - last >= policy.repeat_interval:
        return state, "repeat"
    return state, None


def _silence_for(ref: str, silences: Sequence[Silence], now: datetime) -> Silence | None:
    matching = [silence for silence in silences if silence.matches(ref, now)]
    return min(matching, key=lambda silence: silence.id) if matching else None


def step(
    states: Mapping[StateKey, AlertState],
    krs: Sequence[KrAlertInput],
    *,
    now: datetime,
    silences: Sequence[Silence],
) -> StepResult:
    """Move every alert of the KRs evaluated in this run by one evaluation.

    Args:
        states: The stored non-normal states (may include KRs not in ``krs``; left alone).
        krs: The KRs evaluated in this run, each once.
        now: The time of this run.
        silences: The silences; those not active at ``now`` are ignored.

    Returns:
        The new states of these KRs, the keys to delete, and the notifications.

    Raises:
        ValueError: A KR id appears twice in ``krs``.
    """
    new_states: dict[StateKey, AlertState] = {}
    cleared: list[StateKey] = []
    moves: list[tuple[KrAlertInput, AlertKind, Transition]] = []
    seen: set[int] = set()
    for kr in krs:
        if kr.kr_id in seen:
            raise ValueError(f"KR id {kr.kr_id} ({kr.ref}) is given twice to one alert step")
        seen.add(kr.kr_id)
        for kind in ALERT_KINDS:
            key = (kr.kr_id, kind)
            old = states.get(key)
            holds = condition(kind, kr, old.phase if old is not None else None)
            new, transition = _advance(old, holds, kr, kind, now)
            if new is not None:
                new_states[key] = new
            elif old is not None:
                cleared.append(key)
            if transition is not None:
                moves.append((kr, kind, transition))

    # After the moves, so that a source alert firing in this very step inhibits too.
    failing = {
        kr.connection
        for kr in krs
        if kr.connection is not None
        and (state := new_states.get((kr.kr_id, "source_failing"))) is not None
        and state.phase == "firing"
    }
    notifications: list[Notification] = []
    for kr, kind, transition in sorted(moves, key=lambda m: (m[0].ref, m[1], m[0].kr_id)):
        if not kr.policy.enabled:
            continue
        silence = _silence_for(kr.ref, silences, now)
        delivery: Delivery = "sent"
        if silence is not None:
            delivery = "silenced"
        elif kind != "source_failing" and kr.connection in failing:
            delivery = "inhibited"
        notifications.append(
            Notification(
                kind=kind,
                transition=transition,
                kr=kr,
                owner=owner_of(kind, kr),
                delivery=delivery,
                silence_id=silence.id if silence is not None else None,
            )
        )
        if transition != "resolved":
            key = (kr.kr_id, kind)
            new_states[key] = replace(new_states[key], last_sent_at=now)
    return StepResult(states=new_states, cleared=cleared, notifications=notifications)


def settle(
    previous: Mapping[StateKey, AlertState],
    result: StepResult,
    undelivered: Iterable[Notification],
) -> StepResult:
    """``result`` with the notifications that reached nobody undone, to be tried next run.

    Args:
        previous: The states given to :func:`step`.
        result: What :func:`step` returned.
        undelivered: Notifications of ``result`` with delivery ``sent`` that no channel of
            their route accepted.

    Returns:
        The states and cleared keys to store (the notifications are ``result``'s, unchanged):
        an undelivered ``firing`` is back to ``pending`` (count kept, ``fired_at`` unset), an
        undelivered ``repeat`` keeps its previous ``last_sent_at``, an undelivered
        ``resolved`` keeps the previous firing state instead of clearing it.
    """
    states = dict(result.states)
    cleared = list(result.cleared)
    for notification in undelivered:
        key = (notification.kr.kr_id, notification.kind)
        old = previous.get(key)
        if notification.transition == "resolved":
            if old is not None:
                states[key] = old
                cleared = [k for k in cleared if k != key]
        elif (state := states.get(key)) is not None:
            if notification.transition == "firing":
                states[key] = replace(state, phase="pending", fired_at=None, last_sent_at=None)
            else:
                last = old.last_sent_at if old is not None else None
                states[key] = replace(state, last_sent_at=last)
    return StepResult(states=states, cleared=cleared, notifications=result.notifications)
