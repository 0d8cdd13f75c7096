"""Properties of the state machine over random status sequences, policies and run times."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from okr_pipeline.okr_core.alerting.engine import step
from okr_pipeline.okr_core.alerting.model import ALERT_KINDS, AlertPolicy, Notification

from .support import T0, Runner, kr

STATUSES = ["on_track", "at_risk", "off_track", "no_data", "error", "stale"]

policies = st.builds(
    AlertPolicy,
    enabled=st.just(True),
    pending_evaluations=st.integers(1, 5),
    pending_for=st.sampled_from([timedelta(0), timedelta(hours=2), timedelta(hours=7)]),
    repeat_interval=st.sampled_from([timedelta(0), timedelta(hours=3), timedelta(days=1)]),
    resolve_when=st.sampled_from(["on_track", "at_risk"]),
    no_data=st.sampled_from(["keep", "alert", "normal"]),
    error=st.sampled_from(["keep", "alert", "normal"]),
)
# Runs at irregular times: minutes to a day apart.
runs = st.lists(
    st.tuples(st.sampled_from(STATUSES), st.integers(1, 24 * 60)), min_size=1, max_size=40
)


def simulate(statuses: list[tuple[str, int]], policy: AlertPolicy) -> tuple[Runner, list[str]]:
    runner = Runner()
    seen = []
    for status, minutes in statuses:
        runner.run([kr(status, policy=policy)])
        seen.append(status)
        runner.advance(timedelta(minutes=minutes))
    return runner, seen


def per_alert(runner: Runner) -> dict[str, list[tuple[int, Notification]]]:
    out: dict[str, list[tuple[int, Notification]]] = {kind: [] for kind in ALERT_KINDS}
    for index, notes in enumerate(runner.log):
        for note in notes:
            out[note.kind].append((index, note))
    return out


@settings(max_examples=300, deadline=None)
@given(runs, policies)
def test_firing_and_resolved_alternate(
    statuses: list[tuple[str, int]], policy: AlertPolicy
) -> None:
    runner, _ = simulate(statuses, policy)
    for notes in per_alert(runner).values():
        firing = False
        for _, note in notes:
            if note.transition == "firing":
                assert not firing, "two firings without a resolved between"
                firing = True
            else:  # repeat and resolved only while firing
                assert firing, f"{note.transition} without a firing before it"
                firing = note.transition == "repeat"
    for run_notes in runner.log:
        assert len({(n.kr.kr_id, n.kind) for n in run_notes}) == len(
            run_notes
        )  # one per alert per run


@settings(max_examples=300, deadline=None)
@given(runs, st.integers(1, 5))
def test_off_track_fires_only_after_k_consecutive_holding_evaluations(
    statuses: list[tuple[str, int]], k: int
) -> None:
    # keep (default) for no_data and error: those runs neither count nor reset.
    policy = AlertPolicy(pending_evaluations=k)
    runner, seen = simulate(statuses, policy)
    for index, notes in enumerate(runner.log):
        counted = [s for s in seen[: index + 1] if s in ("on_track", "at_risk", "off_track")]
        fired = any(n.kind == "off_track" and n.transition == "firing" for n in notes)
        if fired:
            assert counted[-k:] == ["off_track"] * k
            assert seen[index] == "off_track"
    # and it does fire: the first time k consecutive off_track evaluations are seen
    counted_index = [i for i, s in enumerate(seen) if s in ("on_track", "at_risk", "off_track")]
    streak = 0
    for i in counted_index:
        streak = streak + 1 if seen[i] == "off_track" else 0
        if streak == k:
            assert [n.transition for n in runner.log[i] if n.kind == "off_track"] == ["firing"]
            break


@settings(max_examples=200, deadline=None)
@given(runs, policies)
def test_repeats_keep_their_interval(statuses: list[tuple[str, int]], policy: AlertPolicy) -> None:
    runner = Runner()
    last: dict[str, object] = {}
    for status, minutes in statuses:
        for note in runner.run([kr(status, policy=policy)]):
            if note.transition == "repeat":
                assert runner.now - last[note.kind] >= policy.repeat_interval  # type: ignore[operator]
            if note.transition in ("firing", "repeat"):
                last[note.kind] = runner.now
        runner.advance(timedelta(minutes=minutes))


@settings(max_examples=200, deadline=None)
@given(runs, policies)
def test_disabled_moves_the_same_states_without_notifications(
    statuses: list[tuple[str, int]], policy: AlertPolicy
) -> None:
    on, off = Runner(), Runner()
    disabled = policy.model_copy(update={"enabled": False})
    for status, minutes in statuses:
        on.run([kr(status, policy=policy)])
        assert off.run([kr(status, policy=disabled)]) == []
        strip = {key: replace(s, last_sent_at=None) for key, s in on.states.items()}
        assert {key: replace(s, last_sent_at=None) for key, s in off.states.items()} == strip
        on.advance(timedelta(minutes=minutes))
        off.advance(timedelta(minutes=minutes))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=8), policies)
def test_step_is_deterministic_and_order_independent(
    statuses: list[str], policy: AlertPolicy
) -> None:
    krs = [
        kr(status, kr_id=i, ref=f"o{i % 3}/k{i}", policy=policy, connection=f"c{i % 2}")
        for i, status in enumerate(statuses)
    ]
    forward = step({}, krs, now=T0, silences=[])
    backward = step({}, list(reversed(krs)), now=T0, silences=[])
    assert forward == backward
    for state in forward.states.values():
        assert state.phase in ("pending", "firing")
        assert state.active_count >= 1
