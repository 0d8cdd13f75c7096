"""send_messages against real receivers: Apprise json/form/mailto, failures, secrets."""

from __future__ import annotations

import email
from collections.abc import Mapping, Sequence
from email.message import Message as EmailMessage
from typing import Any

import pytest
from pydantic import SecretStr

from okr_pipeline.notify import records_for_held, send_messages
from okr_pipeline.okr_core.alerting.messages import Message
from okr_pipeline.okr_core.alerting.model import AlertRecord
from okr_pipeline.okr_core.alerting.routing import Route, RoutingConfig
from tests.notify.conftest import NOW, HttpReceiver, SmtpReceiver, message, notification


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def within(self, ceilings: list[float]) -> bool:
        """Each wait lies between half its ceiling and the ceiling (the policy's jitter)."""
        return len(self) == len(ceilings) and all(
            ceiling / 2 <= wait <= ceiling for wait, ceiling in zip(self, ceilings, strict=True)
        )


def send(
    messages: Sequence[Message], secrets: Mapping[str, SecretStr] | None = None, **kwargs: Any
) -> list[AlertRecord]:
    kwargs.setdefault("sleep", Sleeps())
    return send_messages(messages, secrets or {}, run_id=7, now=NOW, **kwargs)


def test_json_and_form_get_one_post_per_message_with_title_and_body(
    receiver: HttpReceiver,
) -> None:
    first, second = (
        notification("podcasts/listeners", kr_id=1),
        notification("podcasts/episodes", kr_id=2, transition="resolved"),
    )
    other = notification("data/freshness", kr_id=3, kind="source_failing", owner="data-team")
    messages = [
        message(
            "podcasts",
            [receiver.url("json", "/podcasts"), receiver.url("form", "/form")],
            first,
            second,
        ),
        message("data", [receiver.url("json", "/data")], other),
    ]

    records = send(messages)

    assert [r.path for r in receiver.requests].count("/podcasts") == 1
    assert len(receiver.at("/form")) == 1 and len(receiver.at("/data")) == 1
    for path in ("/podcasts", "/form"):
        data = receiver.at(path)[0].data()
        assert data["title"] == messages[0].title
        assert "podcasts/listeners" in data["message"] and "podcasts/episodes" in data["message"]
        assert "data/freshness" not in data["message"]
    assert (
        receiver.at("/form")[0]
        .headers["Content-Type"]
        .startswith("application/x-www-form-urlencoded")
    )
    assert "data/freshness" in receiver.at("/data")[0].data()["message"]
    # one record per (notification, channel)
    assert [(r.kr_id, r.route, r.channel, r.delivery) for r in records] == [
        (1, "podcasts", f"json://127.0.0.1:{receiver.port}", "sent"),
        (2, "podcasts", f"json://127.0.0.1:{receiver.port}", "sent"),
        (1, "podcasts", f"form://127.0.0.1:{receiver.port}", "sent"),
        (2, "podcasts", f"form://127.0.0.1:{receiver.port}", "sent"),
        (3, "data", f"json://127.0.0.1:{receiver.port}", "sent"),
    ]
    record = records[0]
    assert record.run_id == 7 and record.created_at == NOW and record.error is None
    assert (record.kind, record.transition) == ("off_track", "firing")
    assert record.payload["ref"] == "podcasts/listeners"
    assert record.payload["title"] == "Title of podcasts/listeners"
    assert record.payload["message"] == {"title": messages[0].title, "body": messages[0].body}
    assert records[1].transition == "resolved"


def test_mailto_plain_smtp_gets_subject_and_body(smtp: SmtpReceiver) -> None:
    url = f"mailto://127.0.0.1:{smtp.port}?from=okr@example.com&to=pm@example.com&mode=insecure"
    msg = message("podcasts", [url], notification())

    records = send([msg])

    assert [(r.delivery, r.channel, r.error) for r in records] == [
        ("sent", f"mailto://127.0.0.1:{smtp.port}", None)
    ]
    assert len(smtp.mails) == 1
    mail = smtp.mails[0]
    assert mail.mail_from == "okr@example.com" and mail.rcpt_tos == ["pm@example.com"]
    parsed = email.message_from_bytes(mail.content)
    assert parsed["Subject"] == msg.title
    text = _part(parsed, "text/plain")
    html = _part(parsed, "text/html")
    assert "podcasts/listeners" in text and "Title of podcasts/listeners" in text
    assert "<" in html  # the Markdown body was rendered to HTML too


def _part(parsed: EmailMessage, content_type: str) -> str:
    for part in parsed.walk():
        if part.get_content_type() == content_type:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError(f"no {content_type} part")


def test_failing_channel_is_retried_then_recorded_while_the_others_are_sent(
    receiver: HttpReceiver, smtp: SmtpReceiver
) -> None:
    mail = f"mailto://127.0.0.1:{smtp.port}?from=okr@example.com&to=pm@example.com&mode=insecure"
    failing = f"json://okr:hunter2@127.0.0.1:{receiver.port}/fail?token=abc123"
    messages = [
        message("podcasts", [failing, mail], notification(kr_id=1)),
        message("data", [receiver.url("json", "/data")], notification("data/x", kr_id=2)),
    ]
    sleeps = Sleeps()

    records = send(messages, attempts=3, backoff_seconds=0.01, sleep=sleeps)

    assert len(receiver.at("/fail")) == 3
    assert sleeps.within([0.01, 0.02]), sleeps
    assert len(smtp.mails) == 1 and len(receiver.at("/data")) == 1
    by_channel = {r.channel: r for r in records if r.route == "podcasts"}
    failed = by_channel[f"json://127.0.0.1:{receiver.port}"]
    assert failed.delivery == "failed"
    assert failed.error is not None
    assert "500" in failed.error and "after 3 attempts" in failed.error
    assert "hunter2" not in repr(records) and "abc123" not in repr(records)
    assert by_channel[f"mailto://127.0.0.1:{smtp.port}"].delivery == "sent"
    assert [r.delivery for r in records if r.route == "data"] == ["sent"]


def test_waits_between_tries_follow_the_retry_policy_and_its_random(
    receiver: HttpReceiver,
) -> None:
    failing = receiver.url("json", "/fail")
    for draw, expected in [(0.0, [0.005, 0.01, 0.02]), (0.5, [0.0075, 0.015, 0.03])]:
        sleeps = Sleeps()
        records = send(
            [message("podcasts", [failing], notification())],
            attempts=4,
            backoff_seconds=0.01,
            sleep=sleeps,
            random=lambda d=draw: d,
        )
        assert sleeps == pytest.approx(expected)  # equal jitter of 0.01, 0.02, 0.04
        assert "after 4 attempts" in (records[0].error or "")


def test_closed_port_fails_after_attempts_without_raising() -> None:
    from tests.ports import free_port

    port = free_port()
    sleeps = Sleeps()
    records = send(
        [message("podcasts", [f"json://127.0.0.1:{port}/x"], notification())],
        attempts=2,
        sleep=sleeps,
    )
    assert [r.delivery for r in records] == ["failed"]
    assert "Connection error" in (records[0].error or "")
    assert sleeps.within([0.5]), sleeps


def test_secrets_are_used_on_the_wire_but_never_recorded(receiver: HttpReceiver) -> None:
    secrets = {
        "hook_path": SecretStr("p4th-s3cret"),
        "hook_token": SecretStr("t0k&en=s3cret"),
        "smtp_password": SecretStr("pa:ss@word"),
    }
    ok = receiver.url("json", "/hook/${secret:hook_path}?+X-Hook-Token=${secret:hook_token}")
    failing = (
        f"json://okr:${{secret:smtp_password}}@127.0.0.1:{receiver.port}"
        "/fail/${secret:hook_path}?+X-Hook-Token=${secret:hook_token}"
    )
    records = send([message("podcasts", [ok, failing], notification())], secrets, attempts=1)

    seen = receiver.at("/hook/p4th-s3cret")
    assert len(seen) == 1 and seen[0].headers["X-Hook-Token"] == "t0k&en=s3cret"
    assert receiver.at("/fail/p4th-s3cret")[0].headers["Authorization"].startswith("Basic ")
    assert [r.delivery for r in records] == ["sent", "failed"]
    text = repr(records)
    for value in ("p4th-s3cret", "t0k&en=s3cret", "t0k%26en%3Ds3cret", "pa:ss@word", "pa%3Ass"):
        assert value not in text


def test_unknown_secret_fails_that_channel_only(receiver: HttpReceiver) -> None:
    bad = receiver.url("json", "/x?+X-Token=${secret:missing_token}")
    good = receiver.url("json", "/good")
    records = send([message("podcasts", [bad, good], notification())], {"other": SecretStr("v")})
    assert [r.delivery for r in records] == ["failed", "sent"]
    error = records[0].error or ""
    assert "unknown secret 'missing_token'" in error
    assert "OKR_SECRETS__MISSING_TOKEN" in error and "Known secrets: other" in error
    assert receiver.at("/x") == [] and len(receiver.at("/good")) == 1


def test_url_apprise_does_not_know_fails_without_retry() -> None:
    sleeps = Sleeps()
    records = send(
        [message("podcasts", ["nosuchservice://hooks.example.com/x"], notification())],
        sleep=sleeps,
    )
    assert records[0].delivery == "failed"
    assert records[0].channel == "nosuchservice://hooks.example.com"
    assert "not a URL Apprise can send to" in (records[0].error or "")
    assert sleeps == []


def test_route_without_channels_records_recorded_without_error() -> None:
    n1, n2 = notification(kr_id=1), notification("podcasts/b", kr_id=2)
    records = send([message("default", [], n1, n2)])
    assert sorted((r.kr_id, r.route, r.channel, r.delivery, r.error) for r in records) == [
        (1, "default", "", "recorded", None),
        (2, "default", "", "recorded", None),
    ]


def test_dry_run_sends_nothing_and_names_certain_failures(receiver: HttpReceiver) -> None:
    channels = [receiver.url("json", "/x"), receiver.url("json", "/y?+T=${secret:nope}")]
    records = send(
        [message("podcasts", channels, notification()), message("default", [], notification())],
        dry_run=True,
    )
    assert receiver.requests == []
    assert [r.delivery for r in records] == ["dry_run", "dry_run", "dry_run"]
    assert records[0].error is None
    assert "unknown secret 'nope'" in (records[1].error or "")
    assert records[2].error == "recorded, not sent: route 'default' has no channel"


def test_records_for_held_keeps_silenced_and_inhibited_only() -> None:
    routing = RoutingConfig(
        routes=[Route(name="podcasts", owners=["*@example.com"], channels=["json://h/x"])]
    )
    held = [
        notification(kr_id=1, delivery="silenced"),
        notification(kr_id=2, delivery="inhibited", owner="nobody"),
        notification(kr_id=3),
    ]
    records = records_for_held(held, routing, run_id=3, now=NOW)
    assert [(r.kr_id, r.route, r.channel, r.delivery, r.error) for r in records] == [
        (1, "podcasts", "", "silenced", None),
        (2, "default", "", "inhibited", None),
    ]
    assert records[0].payload["ref"] == "podcasts/listeners" and records[0].run_id == 3


@pytest.mark.parametrize("attempts", [0, 1])
def test_at_least_one_attempt(receiver: HttpReceiver, attempts: int) -> None:
    records = send(
        [message("p", [receiver.url("json", "/fail")], notification())], attempts=attempts
    )
    assert len(receiver.at("/fail")) == 1
    assert records[0].delivery == "failed" and "attempts" not in (records[0].error or "")
