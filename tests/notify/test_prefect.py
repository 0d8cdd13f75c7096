"""Prefect notification blocks as channels, and Prefect events, under a real test server."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker

from okr_pipeline.notify import emit_transition_events, event_name, send_messages
from okr_pipeline.okr_core.alerting.model import AlertKind, Transition
from tests.notify.conftest import NOW, HttpReceiver, message, notification

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _no_sleep(seconds: float) -> None:
    pass


def _webhook(receiver: HttpReceiver, path: str, name: str) -> None:
    CustomWebhookNotificationBlock(
        name="okr",
        url=f"http://127.0.0.1:{receiver.port}{path}",
        params={"token": "{{token}}"},
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
        secrets={"token": "bl0ck-s3cret"},
    ).save(name, overwrite=True)


def test_prefect_block_channel_sends_through_the_saved_block(receiver: HttpReceiver) -> None:
    _webhook(receiver, "/block", "okr-podcasts")
    msg = message("podcasts", ["prefect-block://custom-webhook/okr-podcasts"], notification())

    records = send_messages([msg], {}, run_id=1, now=NOW, sleep=_no_sleep)

    assert [(r.delivery, r.channel, r.error) for r in records] == [
        ("sent", "prefect-block://custom-webhook/okr-podcasts", None)
    ]
    [request] = receiver.at("/block")
    assert request.path == "/block?token=bl0ck-s3cret"
    assert request.data() == {"subject": msg.title, "text": msg.body}


def test_failing_block_is_retried_and_its_own_secrets_redacted(receiver: HttpReceiver) -> None:
    _webhook(receiver, "/fail", "okr-failing")
    msg = message("podcasts", ["prefect-block://custom-webhook/okr-failing"], notification())

    records = send_messages([msg], {}, run_id=1, now=NOW, attempts=2, sleep=_no_sleep)

    assert len(receiver.at("/fail")) == 2
    [record] = records
    assert record.delivery == "failed"
    assert "500" in (record.error or "") and "after 2 attempts" in (record.error or "")
    assert "bl0ck-s3cret" not in repr(record)
    assert "token=***" in (record.error or "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("prefect-block://secret/okr-not-a-notifier", "is a Secret, not a notification block"),
        ("prefect-block://custom-webhook/okr-no-such-block", "no Prefect block"),
        ("prefect-block://custom-webhook", "prefect-block://<block-type-slug>/<block-name>"),
    ],
)
def test_block_channel_set_up_wrong_fails_at_once(url: str, expected: str) -> None:
    Secret(value="x").save("okr-not-a-notifier", overwrite=True)
    sleeps: list[float] = []
    records = send_messages(
        [message("podcasts", [url], notification())], {}, run_id=1, now=NOW, sleep=sleeps.append
    )
    assert records[0].delivery == "failed"
    assert expected in (records[0].error or "")
    assert sleeps == []  # a configuration error is not retried


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[EventsWorker]:
    """Prefect's own recording events client in place of the server's (as Prefect's
    ``asserting_events_worker`` fixture does); emit_event itself runs unchanged."""
    worker = EventsWorker.instance(AssertingEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *args, **kwargs: worker)
    try:
        yield worker
    finally:
        worker.drain()


@pytest.mark.parametrize(
    ("kind", "transition", "name"),
    [
        ("off_track", "firing", "okr.kr.off-track"),
        ("off_track", "resolved", "okr.kr.off-track.resolved"),
        ("stale", "firing", "okr.kr.stale"),
        ("stale", "resolved", "okr.kr.stale.resolved"),
        ("source_failing", "firing", "okr.kr.source-failing"),
        ("source_failing", "resolved", "okr.kr.source-failing.resolved"),
        ("off_track", "repeat", None),
    ],
)
def test_event_names(kind: AlertKind, transition: Transition, name: str | None) -> None:
    assert event_name(notification(kind=kind, transition=transition)) == name


def test_transitions_emit_events_repeats_do_not(events: EventsWorker) -> None:
    notifications = [
        notification("podcasts/listeners", kind="off_track"),
        notification("podcasts/listeners", kind="stale", transition="repeat"),
        notification(
            "data/freshness",
            kind="source_failing",
            transition="resolved",
            owner="data-team",
            delivery="inhibited",
        ),
    ]
    emit_transition_events(notifications)

    events.drain()
    client = events._client
    assert isinstance(client, AssertingEventsClient)
    emitted = client.events
    assert [e.event for e in emitted] == ["okr.kr.off-track", "okr.kr.source-failing.resolved"]
    first, second = emitted
    assert first.resource.id == "okr.kr.podcasts.listeners"
    assert first.resource.name == "Title of podcasts/listeners"
    assert (first.resource["objective"], first.resource["kr"], first.resource["owner"]) == (
        "podcasts",
        "listeners",
        "maya@example.com",
    )
    assert first.payload["status"] == "off_track"
    assert (first.payload["value"], first.payload["target"]) == ("1200", "5000")
    assert first.payload["reason"] == "behind pace" and first.payload["delivery"] == "sent"
    # an inhibited transition still emits: the state did change
    assert second.resource.id == "okr.kr.data.freshness"
    assert second.payload["delivery"] == "inhibited"
    assert second.payload["error"] == "HTTP 503 from api"


def test_events_never_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import prefect.events

    def broken(**kwargs: object) -> None:
        raise RuntimeError("no events client")

    monkeypatch.setattr(prefect.events, "emit_event", broken)
    with caplog.at_level(logging.WARNING, logger="okr_pipeline.notify.events"):
        emit_transition_events([notification()])
    assert "not emitted" in caplog.text and "no events client" in caplog.text

    caplog.clear()
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kwargs: None)
    with caplog.at_level(logging.WARNING, logger="okr_pipeline.notify.events"):
        emit_transition_events([notification(), notification(transition="resolved")])
    assert "2 alert events not emitted" in caplog.text
