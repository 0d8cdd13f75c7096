"""Channel names (redacted), secret placeholders, and the errors of channels set up wrong."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from okr_pipeline.notify.channels import ChannelConfigError, describe_channel, resolve_channel


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("json://127.0.0.1:8123/okr?+X-Token=abc", "json://127.0.0.1:8123"),
        ("jsons://user:hunter2@hooks.example.com/okr", "jsons://hooks.example.com"),
        (
            "mailto://${secret:smtp_user}:${secret:smtp_password}@smtp.example.com?to=pm@x.com",
            "mailto://smtp.example.com",
        ),
        ("prefect-block://slack-webhook/podcasts", "prefect-block://slack-webhook/podcasts"),
        ("prefect-block://slack-webhook/podcasts/?x=1", "prefect-block://slack-webhook/podcasts"),
        ("tgram://${secret:bot_token}/12315544", "tgram://${secret:bot_token}"),
        ("not a url", "<not a URL>"),
    ],
)
def test_describe_channel(url: str, name: str) -> None:
    assert describe_channel(url) == name


def test_resolved_name_masks_a_token_apprise_knows_sits_in_the_host() -> None:
    # Slack's first token is where a host goes; Apprise's privacy URL masks it.
    channel = resolve_channel("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general", {})
    assert channel.name.startswith("slack://") and "T1JJ3T3L2" not in channel.name


def test_secret_values_are_url_quoted_and_hidden_from_repr() -> None:
    channel = resolve_channel(
        "json://bob:${secret:pw}@h.example.com/${secret:path}",
        {"pw": SecretStr("p@ss/wd"), "path": SecretStr("abc")},
    )
    assert channel.url == "json://bob:p%40ss%2Fwd@h.example.com/abc"
    assert channel.name == "json://h.example.com"
    assert "p@ss" not in repr(channel) and "abc" not in repr(channel)
    assert channel.redact("echo p@ss/wd and p%40ss%2Fwd and abc") == "echo *** and *** and ***"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "json://h/${secret:nope}",
            "json://h: channel URL: unknown secret 'nope'. Known secrets: pw. Define it with "
            "OKR_SECRETS__NOPE=...",
        ),
        (
            "json://h/${as_of}",
            "unknown placeholder '${as_of}' in channel URL. Valid: ${secret:NAME}.",
        ),
    ],
)
def test_bad_placeholders(url: str, message: str) -> None:
    with pytest.raises(ChannelConfigError, match="json://h: ") as info:
        resolve_channel(url, {"pw": SecretStr("x")})
    assert message in str(info.value)
