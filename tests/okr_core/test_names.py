"""One ``${secret:NAME}`` grammar for HTTP sources and alert channels; one unknown-name message."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError

from okr_pipeline.connectors.errors import SourceConfigError
from okr_pipeline.connectors.registry import parse_source_config
from okr_pipeline.connectors.templating import secret_refs as template_secret_refs
from okr_pipeline.okr_core.alerting.routing import RoutingError, load_routing, secret_names
from okr_pipeline.okr_core.names import secret_name_of, secret_refs, unknown_name_message
from okr_pipeline.okr_core.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test without the caller's OKR_* settings."""
    for name in list(os.environ):
        if name.upper().startswith("OKR_"):
            monkeypatch.delenv(name)


# (text between "${" and "}", the secret name it references or None when invalid)
NAMES = [
    ("secret:ga_token", "ga_token"),
    ("secret:GA_TOKEN", "GA_TOKEN"),
    ("secret:_x", "_x"),
    ("secret:api.key", "api.key"),
    ("secret:api-key", "api-key"),
    ("secret:a.b-c_9", "a.b-c_9"),
    (" secret:padded ", "padded"),
    ("secret:1abc", None),
    ("secret:-x", None),
    ("secret:.x", None),
    ("secret:a b", None),
    ("secret:a/b", None),
    ("secret:a:b", None),
    ("secret: x", None),
    ("secret:", None),
    ("Secret:x", None),
    ("smtp_user", None),
]


def _source_refs(inner: str) -> set[str] | None:
    """The secrets an HTTP source template references, or None when the config is refused."""
    raw = {"type": "http", "url": "https://x.test/m?k=${" + inner + "}", "value_path": "$.v"}
    try:
        return parse_source_config(raw).secret_names()
    except (SourceConfigError, ValidationError):
        return None


def _channel_refs(inner: str, tmp_path: Path) -> list[str] | None:
    """The secrets an alert channel URL references, or None when alerts.yaml is refused."""
    channel = "json://hooks.example.com/${" + inner + "}"
    path = tmp_path / "alerts.yaml"
    path.write_text(f"default_route:\n  channels: ['{channel}']\n")
    try:
        routing = load_routing(path)
    except RoutingError:
        return None
    return secret_names(routing.default_route.channels[0])


@pytest.mark.parametrize(("inner", "name"), NAMES)
def test_sources_and_channels_agree_on_secret_names(
    inner: str, name: str | None, tmp_path: Path
) -> None:
    assert secret_name_of(inner) == name
    assert secret_refs("a${" + inner + "}b") == ({name} if name else set())
    assert template_secret_refs({"h": ["${" + inner + "}"]}) == ({name} if name else set())
    assert _source_refs(inner) == ({name} if name else None)
    assert _channel_refs(inner, tmp_path) == ([name] if name else None)


MESSAGES = [
    (
        "connection",
        "wh",
        ["warehouse"],
        "unknown connection 'wh'. Known connections: warehouse. Define it with "
        "OKR_CONNECTIONS__WH__URL=... in the environment or .env, or [connections.wh] url = "
        "... in okr.toml.",
    ),
    (
        "secret",
        "ga_tokn",
        ["x", "ga_token"],
        "unknown secret 'ga_tokn'. Known secrets: ga_token, x. Did you mean 'ga_token'? "
        "Define it with OKR_SECRETS__GA_TOKN=... in the environment or .env, or [secrets] "
        "ga_tokn = ... in okr.toml.",
    ),
    (
        "secret",
        "hook_token",
        [],
        "unknown secret 'hook_token'. Known secrets: none. Define it with "
        "OKR_SECRETS__HOOK_TOKEN=... in the environment or .env, or [secrets] hook_token = "
        "... in okr.toml.",
    ),
    (
        "secret",
        "api.key",
        [],
        "unknown secret 'api.key'. Known secrets: none. Define it with [secrets] \"api.key\" "
        "= ... in okr.toml (a name with '.' cannot be an environment variable).",
    ),
    (
        "connection",
        "w-h.x",
        ["a"],
        "unknown connection 'w-h.x'. Known connections: a. Define it with "
        "[connections.\"w-h.x\"] url = ... in okr.toml (a name with '-' or '.' cannot be an "
        "environment variable).",
    ),
    (
        "secret",
        "api-key",
        ["api_key"],
        "unknown secret 'api-key'. Known secrets: api_key. Did you mean 'api_key'? Define it "
        "with [secrets] api-key = ... in okr.toml (a name with '-' cannot be an environment "
        "variable).",
    ),
    (
        "secret",
        "GA_TOKEN",
        ["ga_token"],
        "unknown secret 'GA_TOKEN'. Known secrets: ga_token. Did you mean 'ga_token'? Define "
        "it with [secrets] GA_TOKEN = ... in okr.toml (environment variables give lower-case "
        "names).",
    ),
]


@pytest.mark.parametrize(("kind", "name", "known", "message"), MESSAGES)
def test_unknown_name_message(
    kind: Literal["connection", "secret"], name: str, known: list[str], message: str
) -> None:
    assert unknown_name_message(kind, name, known) == message


@pytest.mark.parametrize(("kind", "name", "known", "message"), MESSAGES)
def test_the_advice_defines_the_name(
    kind: Literal["connection", "secret"],
    name: str,
    known: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Following either way the message gives makes the name known to the settings."""
    found = re.search(r"(\[[^\]]+\]) (\S+) = \.\.\. in okr\.toml", message)
    assert found is not None
    (tmp_path / "okr.toml").write_text(f'{found[1]}\n{found[2]} = "sqlite://"\n')
    settings = load_settings(tmp_path)
    assert name in (settings.connections if kind == "connection" else settings.secrets)

    env = re.search(r"(OKR_\w+)=\.\.\.", message)
    if env is None:
        return
    (tmp_path / "okr.toml").unlink()
    monkeypatch.setenv(env[1], "sqlite://")
    settings = load_settings(tmp_path)
    assert name in (settings.connections if kind == "connection" else settings.secrets)


@pytest.mark.parametrize(
    ("name", "valid"),
    [("ga_token", True), ("api.key", True), ("x-y", True), ("1bad", False), ("a b", False)],
)
def test_auth_secret_fields_take_the_same_names(name: str, valid: bool) -> None:
    from pydantic import ValidationError

    from okr_pipeline.connectors.auth import BasicAuth, BearerAuth

    for build in (
        lambda: BearerAuth(type="bearer", secret=name),
        lambda: BasicAuth(type="basic", username="u", password_secret=name),
    ):
        if valid:
            build()
        else:
            with pytest.raises(ValidationError, match="is not a secret name"):
                build()
