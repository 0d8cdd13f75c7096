"""run_alerts over several runs: failed sends are retried, absent KRs are left alone.

A real store (SQLite), a real local HTTP receiver that fails then recovers, and the real
alert step; only the clock is the test's.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from okr_pipeline.cli.explain import explain_kr
from okr_pipeline.okr_core.alerting.model import AlertPolicy, Notification
from okr_pipeline.okr_core.alerting.routing import Route, RoutingConfig
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.db import make_engine, upgrade
from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.alerting import AlertSummary, run_alerts
from tests.notify.conftest import HttpReceiver
from tests.okr_store.conftest import kr, objective, okr_set

T0 = datetime(2026, 10, 12, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    store = Store(engine)
    store.sync_definitions(okr_set([objective("podcasts", [kr("listeners"), kr("episodes")])]))
    yield store
    engine.dispose()


@pytest.fixture(autouse=True)
def events(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, str, str]]]:
    """The transitions each run hands to its event emitter, as (ref, kind, transition).

    The Prefect flow passes an emitter that sends Prefect events (tested with a Prefect API
    in test_prefect.py); here the point is which transitions the alert step hands to it.
    """
    emitted: list[list[tuple[str, str, str]]] = []

    def record(notifications: Sequence[Notification]) -> None:
        emitted.append([(n.kr.ref, n.kind, n.transition) for n in notifications])

    monkeypatch.setattr(
        sys.modules[__name__], "run_alerts", functools.partial(run_alerts, emit_events=record)
    )
    return emitted


@pytest.fixture
def krs(store: Store) -> dict[str, StoredKeyResult]:
    return {k.ref: k for k in store.active_key_results()}


def routing(receiver: HttpReceiver) -> RoutingConfig:
    return RoutingConfig(
        defaults=AlertPolicy(pending_evaluations=1, repeat_interval=timedelta(days=3)),
        routes=[Route(name="podcasts", owners=["*"], channels=[receiver.url("json", "/hook")])],
    )


def evaluation(kr: StoredKeyResult, status: str, at: datetime) -> EvaluationRecord:
    return EvaluationRecord(
        kr_id=kr.kr_id, evaluated_at=at, status=status, value=Decimal(110), reason=status
    )


def run(
    store: Store,
    receiver: HttpReceiver,
    krs: list[StoredKeyResult],
    evaluations: list[EvaluationRecord],
    at: datetime,
    tmp_path: Path,
) -> AlertSummary:
    return run_alerts(
        krs,
        evaluations,
        [],
        store=store,
        settings=Settings(project_dir=tmp_path),
        routing=routing(receiver),
        run_id=None,
        now=at,
        dry_run=False,
    )


def test_a_failed_firing_is_retried_next_run_and_then_not_repeated(
    store: Store,
    krs: dict[str, StoredKeyResult],
    receiver: HttpReceiver,
    tmp_path: Path,
    events: list[list[tuple[str, str, str]]],
) -> None:
    listeners = krs["podcasts/listeners"]
    receiver.down = True
    first = run(store, receiver, [listeners], [evaluation(listeners, "off_track", T0)], T0,
                tmp_path)  # fmt: skip
    assert first.deliveries == {"failed": 1}
    assert len(receiver.at("/hook")) == 3  # the sender's own attempts, all answered 503
    state = store.alert_states()[(listeners.kr_id, "off_track")]
    # Nobody was told: not firing yet, nothing recorded as sent.
    assert (state.phase, state.fired_at, state.last_sent_at) == ("pending", None, None)
    [record] = store.recent_alerts()
    assert (record.transition, record.delivery) == ("firing", "failed")
    assert record.error is not None and "503" in record.error
    # okr explain says why the alert is still pending.
    console = Console(width=200, record=True, color_system=None)
    settings = Settings(project_dir=tmp_path, store_url=f"sqlite:///{tmp_path / 'store.db'}")
    explain_kr(settings, "podcasts/listeners", console)
    assert "its firing failed to send and is sent again next run" in console.export_text()

    receiver.down = False
    second_at = T0 + HOUR
    second = run(store, receiver, [listeners], [evaluation(listeners, "off_track", second_at)],
                 second_at, tmp_path)  # fmt: skip
    assert second.deliveries == {"sent": 1}
    assert len(receiver.at("/hook")) == 4
    assert "podcasts/listeners" in receiver.at("/hook")[-1].data()["message"]
    state = store.alert_states()[(listeners.kr_id, "off_track")]
    assert (state.phase, state.fired_at, state.last_sent_at) == ("firing", second_at, second_at)
    assert [(r.transition, r.delivery) for r in store.recent_alerts()] == [
        ("firing", "sent"),
        ("firing", "failed"),
    ]

    third_at = T0 + 2 * HOUR
    third = run(store, receiver, [listeners], [evaluation(listeners, "off_track", third_at)],
                third_at, tmp_path)  # fmt: skip
    assert third.deliveries == {}  # told an hour ago; the repeat is due in 3 days
    assert len(receiver.at("/hook")) == 4
    assert len(store.recent_alerts()) == 2
    # The firing event goes out once, with the message that reached the owner.
    assert events == [[], [("podcasts/listeners", "off_track", "firing")], []]


def test_a_failed_resolved_is_retried_and_a_never_told_firing_gets_none(
    store: Store, krs: dict[str, StoredKeyResult], receiver: HttpReceiver, tmp_path: Path
) -> None:
    listeners, episodes = krs["podcasts/listeners"], krs["podcasts/episodes"]
    both = [listeners, episodes]
    run(store, receiver, both, [evaluation(listeners, "off_track", T0)], T0, tmp_path)
    receiver.down = True
    at = T0 + HOUR
    # listeners recovers while the receiver is down; episodes goes off track.
    evals = [evaluation(listeners, "on_track", at), evaluation(episodes, "off_track", at)]
    assert run(store, receiver, both, evals, at, tmp_path).deliveries == {"failed": 2}
    assert store.alert_states()[(listeners.kr_id, "off_track")].phase == "firing"

    receiver.down = False
    at = T0 + 2 * HOUR
    evals = [evaluation(listeners, "on_track", at), evaluation(episodes, "on_track", at)]
    summary = run(store, receiver, both, evals, at, tmp_path)
    # The resolved message goes out now; episodes' firing never did, so it resolves silently.
    assert summary.transitions == {"off_track resolved": 1}
    assert summary.deliveries == {"sent": 1}
    assert store.alert_states() == {}


def test_krs_absent_from_the_evaluations_keep_their_states(
    store: Store, krs: dict[str, StoredKeyResult], receiver: HttpReceiver, tmp_path: Path
) -> None:
    listeners, episodes = krs["podcasts/listeners"], krs["podcasts/episodes"]
    both = [listeners, episodes]
    run(store, receiver, both, [evaluation(listeners, "off_track", T0),
                                evaluation(episodes, "off_track", T0)], T0, tmp_path)  # fmt: skip
    before = store.alert_states()
    assert {state.phase for state in before.values()} == {"firing"}
    sent = len(receiver.requests)

    # A rerun of an as-of already evaluated: both KRs measured, none evaluated anew.
    empty = run(store, receiver, both, [], T0 + 4 * 24 * HOUR, tmp_path)
    assert (empty.deliveries, empty.transitions) == ({}, {})
    assert store.alert_states() == before

    # Partial: only episodes is evaluated (and recovers); listeners is not resolved, not
    # repeated (its repeat would be due), not counted.
    at = T0 + 4 * 24 * HOUR
    partial = run(store, receiver, both, [evaluation(episodes, "on_track", at)], at, tmp_path)
    assert partial.transitions == {"off_track resolved": 1}
    after = store.alert_states()
    assert after == {k: v for k, v in before.items() if k[0] == listeners.kr_id}
    assert len(receiver.requests) == sent + 1
    newest = store.recent_alerts(ref="podcasts")[0]
    assert (newest.ref, newest.transition) == ("podcasts/episodes", "resolved")


def test_one_channel_that_took_it_is_enough(
    store: Store, krs: dict[str, StoredKeyResult], receiver: HttpReceiver, tmp_path: Path
) -> None:
    listeners = krs["podcasts/listeners"]
    channels = [receiver.url("json", "/hook"), receiver.url("json", "/fail")]
    two = RoutingConfig(
        defaults=AlertPolicy(pending_evaluations=1),
        routes=[Route(name="podcasts", owners=["*"], channels=channels)],
    )
    for hour in range(2):
        at = T0 + hour * HOUR
        summary = run_alerts(
            [listeners],
            [evaluation(listeners, "off_track", at)],
            [],
            store=store,
            settings=Settings(project_dir=tmp_path),
            routing=two,
            run_id=None,
            now=at,
            dry_run=False,
        )
        # Told once through /hook; the failing second channel is recorded, not retried.
        expected = {"sent": 1, "failed": 1} if hour == 0 else {}
        assert summary.deliveries == expected
    state = store.alert_states()[(listeners.kr_id, "off_track")]
    assert (state.phase, state.last_sent_at) == ("firing", T0)
    assert len(receiver.at("/hook")) == 1
