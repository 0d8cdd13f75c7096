"""The alert state machine over sequences of runs, with time under the test's control."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from okr_pipeline.okr_core.alerting.engine import StateKey, StepResult, condition, step
from okr_pipeline.okr_core.alerting.model import AlertKind, AlertPolicy, AlertState, Silence

from .support import HOUR, T0, Runner, brief, kr, policy

# One letter per status, so that a sequence reads like a timeline.
STATUS = {
    "O": "off_track",
    "A": "at_risk",
    "K": "on_track",
    "N": "no_data",
    "E": "error",
    "S": "stale",
}


def timeline(
    statuses: str, kind: AlertKind = "off_track", every: timedelta = HOUR, **fields: Any
) -> list[str]:
    """The transition of alert ``kind`` in each run ('' for none), one run per letter."""
    runner = Runner()
    out = []
    for letter in statuses:
        notes = runner.run([kr(STATUS[letter], policy=policy(**fields))])
        out.append(",".join(n.transition for n in notes if n.kind == kind))
        runner.advance(every)
    return out


@pytest.mark.parametrize(
    ("statuses", "fields", "expected"),
    [
        # pending by count
        ("OOOOK", {"pending_evaluations": 3}, ["", "", "firing", "", "resolved"]),
        ("OK", {"pending_evaluations": 1}, ["firing", "resolved"]),
        ("OOK", {}, ["", "firing", "resolved"]),  # the default: 2 evaluations
        # pending by duration (runs are an hour apart)
        (
            "OOOOO",
            {"pending_evaluations": 1, "pending_for": "3h"},
            ["", "", "", "firing", ""],
        ),
        # both: the count is the later of the two
        (
            "OOOOOO",
            {"pending_evaluations": 5, "pending_for": "1h"},
            ["", "", "", "", "firing", ""],
        ),
        # both: the duration is the later of the two
        ("OOOO", {"pending_evaluations": 2, "pending_for": "150m"}, ["", "", "", "firing"]),
        # pending that stops holding goes back to normal silently, and counts from scratch
        ("OKOOK", {"pending_evaluations": 2}, ["", "", "", "firing", "resolved"]),
        # fire once, no re-send every run
        ("OOOOOOO", {"pending_evaluations": 1}, ["firing", "", "", "", "", "", ""]),
        # repeat after repeat_interval, measured from the last sending
        (
            "OOOOOOOK",
            {"pending_evaluations": 1, "repeat_interval": "3h"},
            ["firing", "", "", "repeat", "", "", "repeat", "resolved"],
        ),
        # flapping never fires with pending 2
        ("OKOKOKOKOK", {"pending_evaluations": 2}, [""] * 10),
        ("OAOAOAOA", {"pending_evaluations": 2}, [""] * 8),
        # hysteresis: at_risk keeps a firing alert firing (and repeating) until on_track
        (
            "OAAAK",
            {"pending_evaluations": 1, "repeat_interval": "2h"},
            ["firing", "", "repeat", "", "resolved"],
        ),
        ("OAK", {"pending_evaluations": 1, "resolve_when": "at_risk"}, ["firing", "resolved", ""]),
        # at_risk does not hold for a pending alert
        ("OAOOK", {"pending_evaluations": 2}, ["", "", "", "firing", "resolved"]),
        # no_data: keep (default) neither counts nor resets, nor repeats, nor resolves
        ("ONO", {"pending_evaluations": 2}, ["", "", "firing"]),
        (
            "ONNNNK",
            {"pending_evaluations": 1, "repeat_interval": "1h"},
            ["firing", "", "", "", "", "resolved"],
        ),
        # no_data: alert counts as holding, normal as not holding
        ("NNK", {"pending_evaluations": 2, "no_data": "alert"}, ["", "firing", "resolved"]),
        ("ONO", {"pending_evaluations": 2, "no_data": "normal"}, ["", "", ""]),
        ("ON", {"pending_evaluations": 1, "no_data": "normal"}, ["firing", "resolved"]),
        # error: the same three policies
        ("OEO", {"pending_evaluations": 2}, ["", "", "firing"]),
        ("EEK", {"pending_evaluations": 2, "error": "alert"}, ["", "firing", "resolved"]),
        ("OE", {"pending_evaluations": 1, "error": "normal"}, ["firing", "resolved"]),
        # a KR going stale does not resolve its off-track alert (no_data policy: keep)
        ("OSSK", {"pending_evaluations": 1}, ["firing", "", "", "resolved"]),
    ],
)
def test_off_track_timeline(statuses: str, fields: dict[str, Any], expected: list[str]) -> None:
    assert timeline(statuses, **fields) == expected


@pytest.mark.parametrize(
    ("statuses", "kind", "fields", "expected"),
    [
        ("SSSK", "stale", {}, ["", "firing", "", "resolved"]),
        ("SSOA", "stale", {"pending_evaluations": 1}, ["firing", "", "resolved", ""]),
        ("SNS", "stale", {}, ["", "", "firing"]),  # no_data: keep
        ("SN", "stale", {"pending_evaluations": 1, "no_data": "normal"}, ["firing", "resolved"]),
        ("EEEK", "source_failing", {}, ["", "firing", "", "resolved"]),
        ("EN", "source_failing", {"pending_evaluations": 1}, ["firing", "resolved"]),
        ("EKEK", "source_failing", {}, ["", "", "", ""]),
    ],
)
def test_stale_and_source_timelines(
    statuses: str, kind: AlertKind, fields: dict[str, Any], expected: list[str]
) -> None:
    assert timeline(statuses, kind, **fields) == expected


def test_a_source_that_keeps_failing_into_stale_stays_failing() -> None:
    runner = Runner()
    p = policy(pending_evaluations=1)
    assert brief(runner.run([kr("error", policy=p)])) == [("obj/kr1", "source_failing", "firing")]
    runner.advance()
    stale = runner.run([kr("stale", policy=p, error="HTTP 503")])
    assert brief(stale) == [("obj/kr1", "stale", "firing")]
    runner.advance()
    recovered = runner.run([kr("on_track", policy=p)])
    assert sorted(brief(recovered)) == [
        ("obj/kr1", "source_failing", "resolved"),
        ("obj/kr1", "stale", "resolved"),
    ]


def test_state_records_counts_times_and_last_sent() -> None:
    runner = Runner()
    p = policy(pending_evaluations=2, repeat_interval="2h")
    runner.run([kr("off_track", policy=p)])
    assert runner.states[(1, "off_track")] == AlertState(1, "off_track", "pending", 1, T0)
    runner.advance()
    runner.run([kr("off_track", policy=p)])
    fired = T0 + HOUR
    assert runner.states[(1, "off_track")] == AlertState(
        1, "off_track", "firing", 2, T0, fired_at=fired, last_sent_at=fired
    )
    runner.advance()
    runner.run([kr("off_track", policy=p)])
    assert runner.states[(1, "off_track")].last_sent_at == fired
    runner.advance(2 * HOUR)
    assert brief(runner.run([kr("off_track", policy=p)])) == [("obj/kr1", "off_track", "repeat")]
    assert runner.states[(1, "off_track")].last_sent_at == T0 + 4 * HOUR
    assert runner.states[(1, "off_track")].active_count == 4


def test_step_result_lists_states_and_cleared_keys() -> None:
    other = AlertState(99, "off_track", "firing", 5, T0, fired_at=T0)
    pending = AlertState(1, "stale", "pending", 1, T0)
    firing = AlertState(1, "off_track", "firing", 3, T0, fired_at=T0, last_sent_at=T0)
    states: dict[StateKey, AlertState] = {
        (99, "off_track"): other,
        (1, "stale"): pending,
        (1, "off_track"): firing,
    }
    result = step(states, [kr("on_track")], now=T0 + HOUR, silences=[])
    assert isinstance(result, StepResult)
    assert result.states == {}  # a KR not in this run is neither kept nor cleared
    assert sorted(result.cleared) == [(1, "off_track"), (1, "stale")]
    assert brief(result.notifications) == [("obj/kr1", "off_track", "resolved")]


def test_notifications_are_sorted_by_ref_then_kind() -> None:
    p = policy(pending_evaluations=1)
    krs = [
        kr("error", kr_id=3, ref="b/x", policy=policy(pending_evaluations=1, error="alert")),
        kr("off_track", kr_id=2, ref="a/z", policy=p, connection="crm"),
        kr("off_track", kr_id=1, ref="a/y", policy=p, connection="crm"),
    ]
    result = step({}, krs, now=T0, silences=[])
    assert brief(result.notifications) == [
        ("a/y", "off_track", "firing"),
        ("a/z", "off_track", "firing"),
        ("b/x", "off_track", "firing"),
        ("b/x", "source_failing", "firing"),
        ("b/x", "stale", "firing"),
    ]


def test_a_kr_given_twice_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="given twice"):
        step({}, [kr(), kr()], now=T0, silences=[])


@pytest.mark.parametrize(
    ("connection_owner", "expected"),
    [("data-team@example.com", "data-team@example.com"), (None, "maya@example.com")],
)
def test_source_alerts_go_to_the_connection_owner(
    connection_owner: str | None, expected: str
) -> None:
    p = policy(pending_evaluations=1, error="alert")
    result = step(
        {}, [kr("error", policy=p, connection_owner=connection_owner)], now=T0, silences=[]
    )
    owners = {n.kind: n.owner for n in result.notifications}
    assert owners == {
        "source_failing": expected,
        "off_track": "maya@example.com",
        "stale": "maya@example.com",
    }


# -- silences -------------------------------------------------------------------------------


def silence(target: str = "obj/kr1", hours: float = 2, silence_id: int = 7) -> Silence:
    return Silence(silence_id, target, T0 + timedelta(hours=hours), "known outage", T0)


@pytest.mark.parametrize("target", ["obj/kr1", "obj"])
def test_silenced_alert_is_recorded_fires_and_lifts_without_a_burst(target: str) -> None:
    runner = Runner(silences=[silence(target, hours=5)])
    p = policy(pending_evaluations=1, repeat_interval="3h")
    timeline = []
    for hour in range(8):
        notes = runner.run([kr("off_track", policy=p)], at=T0 + timedelta(hours=hour))
        timeline.append([(n.transition, n.delivery, n.silence_id) for n in notes])
        assert runner.states[(1, "off_track")].phase == "firing"
    assert timeline == [
        [("firing", "silenced", 7)],
        [],
        [],
        [("repeat", "silenced", 7)],  # repeats keep their rhythm while silenced ...
        [],
        [],  # ... the silence ends at T0+5h: nothing at once (it stood in for the sending)
        [("repeat", "sent", None)],  # the next repeat, when due, is sent
        [],
    ]


def test_silence_of_another_kr_or_objective_does_not_apply() -> None:
    silences = [silence("obj/kr2"), silence("other"), silence("ob")]
    p = policy(pending_evaluations=1)
    result = step({}, [kr("off_track", policy=p)], now=T0, silences=silences)
    assert [n.delivery for n in result.notifications] == ["sent"]


def test_resolved_while_silenced_is_recorded_silenced_and_clears() -> None:
    runner = Runner()
    p = policy(pending_evaluations=1)
    runner.run([kr("off_track", policy=p)])
    runner.silences.append(silence(hours=5))
    (note,) = runner.run([kr("on_track", policy=p)], at=T0 + HOUR)
    assert (note.transition, note.delivery) == ("resolved", "silenced")
    assert runner.states == {}


def test_expired_silence_is_ignored() -> None:
    result = step(
        {},
        [kr("off_track", policy=policy(pending_evaluations=1))],
        now=T0 + timedelta(hours=2),
        silences=[silence(hours=2)],
    )
    assert [(n.delivery, n.silence_id) for n in result.notifications] == [("sent", None)]


# -- inhibition -----------------------------------------------------------------------------


def fleet(source_status: str, p: AlertPolicy) -> list[Any]:
    """kr1 reads the warehouse (failing or not), kr2 the warehouse too, kr3 the CRM."""
    return [
        kr(source_status, kr_id=1, policy=p, connection="warehouse"),
        kr("off_track", kr_id=2, policy=p, connection="warehouse"),
        kr("off_track", kr_id=3, policy=p, connection="crm"),
    ]


def deliveries(notes: list[Any]) -> dict[tuple[str, str, str], str]:
    return {(n.kr.ref, n.kind, n.transition): n.delivery for n in notes}


def test_a_source_alert_firing_in_the_same_step_inhibits_its_connection_only() -> None:
    p = policy(pending_evaluations=1)
    notes = Runner().run(fleet("error", p))
    assert deliveries(notes) == {
        ("obj/kr1", "source_failing", "firing"): "sent",
        ("obj/kr2", "off_track", "firing"): "inhibited",
        ("obj/kr3", "off_track", "firing"): "sent",
    }


def test_a_pending_source_alert_does_not_inhibit_but_a_firing_one_does() -> None:
    runner = Runner()
    p = policy(pending_evaluations=2)
    krs = fleet("error", p)
    runner.run(krs)
    runner.advance()
    assert deliveries(runner.run(krs)) == {
        ("obj/kr1", "source_failing", "firing"): "sent",
        ("obj/kr2", "off_track", "firing"): "inhibited",
        ("obj/kr3", "off_track", "firing"): "sent",
    }
    runner.advance()
    # kr2 recovers while the source still fails: its resolved is inhibited too
    recovered = [krs[0], kr("on_track", kr_id=2, policy=p, connection="warehouse"), krs[2]]
    assert deliveries(runner.run(recovered)) == {("obj/kr2", "off_track", "resolved"): "inhibited"}


def test_inhibition_ends_when_the_source_alert_resolves() -> None:
    runner = Runner()
    p = policy(pending_evaluations=1, repeat_interval="1h")
    runner.run(fleet("error", p))
    runner.advance()
    assert deliveries(runner.run(fleet("on_track", p))) == {
        ("obj/kr1", "source_failing", "resolved"): "sent",
        ("obj/kr2", "off_track", "repeat"): "sent",
        ("obj/kr3", "off_track", "repeat"): "sent",
    }


def test_silence_wins_over_inhibition() -> None:
    runner = Runner(silences=[silence("obj/kr2")])
    notes = runner.run(fleet("error", policy(pending_evaluations=1)))
    assert deliveries(notes)[("obj/kr2", "off_track", "firing")] == "silenced"


# -- disabled -------------------------------------------------------------------------------


def test_disabled_policy_moves_states_without_notifications() -> None:
    runner = Runner()
    off = policy(pending_evaluations=2, repeat_interval="1d", enabled=False)
    for _ in range(3):
        assert runner.run([kr("off_track", policy=off)]) == []
        runner.advance()
    state = runner.states[(1, "off_track")]
    assert (state.phase, state.fired_at, state.last_sent_at) == ("firing", T0 + HOUR, None)
    # enabled again: a repeat once the interval since it fired has passed, not a new firing
    on = policy(pending_evaluations=2, repeat_interval="1d")
    assert runner.run([kr("off_track", policy=on)]) == []
    later = T0 + HOUR + timedelta(days=1)
    assert brief(runner.run([kr("off_track", policy=on)], at=later)) == [
        ("obj/kr1", "off_track", "repeat")
    ]
    # and a disabled KR that recovers is cleared silently
    runner.advance()
    assert runner.run([kr("on_track", policy=off)]) == []
    assert runner.states == {}


# -- conditions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "phase", "fields", "expected"),
    [
        ("off_track", "off_track", None, {}, True),
        ("off_track", "at_risk", None, {}, False),
        ("off_track", "at_risk", "pending", {}, False),
        ("off_track", "at_risk", "firing", {}, True),
        ("off_track", "at_risk", "firing", {"resolve_when": "at_risk"}, False),
        ("off_track", "on_track", "firing", {}, False),
        ("off_track", "no_data", "firing", {}, None),
        ("off_track", "no_data", None, {"no_data": "alert"}, True),
        ("off_track", "error", None, {"error": "normal"}, False),
        ("off_track", "error", None, {"no_data": "alert"}, None),
        ("off_track", "stale", None, {"no_data": "alert"}, True),
        ("off_track", "something-new", "firing", {}, None),
        ("stale", "stale", None, {}, True),
        ("stale", "off_track", None, {}, False),
        ("stale", "error", None, {"error": "alert"}, True),
        ("source_failing", "error", None, {}, True),
        ("source_failing", "no_data", None, {"no_data": "alert"}, False),
        ("source_failing", "off_track", None, {}, False),
    ],
)
def test_condition(
    kind: AlertKind, status: str, phase: Any, fields: dict[str, Any], expected: bool | None
) -> None:
    assert condition(kind, kr(status, policy=policy(**fields)), phase) is expected
