"""settle(): notifications that reached nobody are undone, so the next run tries again."""

from __future__ import annotations

from collections.abc import Sequence

from okr_pipeline.okr_core.alerting.engine import StateKey, settle, step
from okr_pipeline.okr_core.alerting.model import AlertState, KrAlertInput, Notification

from .support import HOUR, T0, Runner, brief, kr, policy

FAST = policy(pending_evaluations=1, repeat_interval="1d")


class FlakyRunner(Runner):
    """A runner whose channels are down while ``down`` holds: nothing sent is delivered."""

    down: bool = False

    def run(self, krs: Sequence[KrAlertInput], *, at: object = None) -> list[Notification]:
        before: dict[StateKey, AlertState] = dict(self.states)
        result = step(before, krs, now=self.now, silences=self.silences)
        lost = [n for n in result.notifications if n.delivery == "sent"] if self.down else []
        result = settle(before, result, lost)
        for key in result.cleared:
            del self.states[key]
        self.states.update(result.states)
        self.log.append(result.notifications)
        return result.notifications


def test_failed_firing_is_sent_again_next_run_then_not_repeated() -> None:
    runner = FlakyRunner()
    runner.down = True
    assert brief(runner.run([kr("off_track", policy=FAST)])) == [("obj/kr1", "off_track", "firing")]
    state = runner.states[(1, "off_track")]
    assert (state.phase, state.fired_at, state.last_sent_at) == ("pending", None, None)

    runner.down = False
    runner.advance()
    assert brief(runner.run([kr("off_track", policy=FAST)])) == [("obj/kr1", "off_track", "firing")]
    state = runner.states[(1, "off_track")]
    assert (state.phase, state.fired_at, state.last_sent_at) == (
        "firing",
        T0 + HOUR,
        T0 + HOUR,
    )
    assert state.active_since == T0 and state.active_count == 2

    runner.advance()
    assert runner.run([kr("off_track", policy=FAST)]) == []  # told; not due to repeat


def test_failed_firing_that_clears_sends_no_resolved() -> None:
    runner = FlakyRunner()
    runner.down = True
    runner.run([kr("off_track", policy=FAST)])
    runner.down = False
    runner.advance()
    assert runner.run([kr("on_track", policy=FAST)]) == []
    assert runner.states == {}


def test_failed_repeat_is_due_again_next_run() -> None:
    runner = FlakyRunner()
    runner.run([kr("off_track", policy=FAST)])
    runner.advance(HOUR * 24)
    runner.down = True
    assert brief(runner.run([kr("off_track", policy=FAST)]))[0][2] == "repeat"
    assert runner.states[(1, "off_track")].last_sent_at == T0
    runner.down = False
    runner.advance()
    assert brief(runner.run([kr("off_track", policy=FAST)]))[0][2] == "repeat"
    assert runner.states[(1, "off_track")].last_sent_at == T0 + 25 * HOUR
    runner.advance()
    assert runner.run([kr("off_track", policy=FAST)]) == []


def test_failed_resolved_keeps_firing_and_resolves_next_run() -> None:
    runner = FlakyRunner()
    runner.run([kr("off_track", policy=FAST)])
    fired = runner.states[(1, "off_track")]
    runner.advance()
    runner.down = True
    assert brief(runner.run([kr("on_track", policy=FAST)]))[0][2] == "resolved"
    assert runner.states[(1, "off_track")] == fired  # as before: still firing
    runner.down = False
    runner.advance()
    assert brief(runner.run([kr("on_track", policy=FAST)]))[0][2] == "resolved"
    assert runner.states == {}


def test_held_notifications_are_never_undone() -> None:
    # Only notifications to send can be undelivered; the flow passes none of the held.
    before: dict[StateKey, AlertState] = {}
    result = step(before, [kr("off_track", policy=FAST)], now=T0, silences=[])
    assert settle(before, result, []) == result
