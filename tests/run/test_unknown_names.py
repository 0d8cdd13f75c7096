"""Every place that meets an undefined connection or secret says the one message."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import SecretStr

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, SourceConfigError
from okr_pipeline.connectors.http import HttpSource
from okr_pipeline.connectors.registry import check_references, parse_source_config
from okr_pipeline.connectors.sql import SqlSource
from okr_pipeline.notify.channels import ChannelConfigError, resolve_channel
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.names import unknown_name_message
from okr_pipeline.okr_core.settings import ConnectionSettings, load_settings
from okr_pipeline.run.preflight import load_alert_routing

CTX = SourceContext(
    as_of=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
    cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
    kr_ref="growth/signups",
)
ENV = SourceEnvironment(
    connections={"warehouse": ConnectionSettings(url=SecretStr("sqlite://"))},
    secrets={"ga_token": SecretStr("s3cr3t-value")},
)
HTTP = {"type": "http", "url": "https://x.test/m?k=${secret:api.key}", "value_path": "$.v"}
HTTP_ON = {"type": "http", "connection": "api", "path": "/m", "value_path": "$.v"}
SQL = {"type": "sql", "connection": "wh", "query": "SELECT 1"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test without the caller's OKR_* settings."""
    for name in list(os.environ):
        if name.upper().startswith("OKR_"):
            monkeypatch.delenv(name)


def _fetch(source_class: type[Any], raw: dict[str, Any]) -> Callable[[], object]:
    def run() -> object:
        with source_class(ENV) as source:
            return source.fetch(parse_source_config(raw), CTX)

    return run


def _preflight(tmp_path: Path) -> object:
    (tmp_path / "alerts.yaml").write_text(
        "routes:\n  - name: pm\n    owners: [o@example.com]\n"
        "    channels: ['json://h.example.com/${secret:hook-token}']\n"
    )
    (tmp_path / "okr.toml").write_text('[secrets]\nga_token = "s3cr3t-value"\n')
    return load_alert_routing(load_settings(tmp_path))


@pytest.mark.parametrize(
    ("run", "error", "prefix", "kind", "name"),
    [
        (
            lambda _: check_references(parse_source_config(SQL), ENV),
            SourceConfigError,
            "",
            "connection",
            "wh",
        ),
        (
            lambda _: check_references(parse_source_config(HTTP), ENV),
            SourceConfigError,
            "",
            "secret",
            "api.key",
        ),
        (
            lambda _: _fetch(SqlSource, SQL)(),
            FatalSourceError,
            "KR growth/signups: sql source on connection 'wh': ",
            "connection",
            "wh",
        ),
        (
            lambda _: _fetch(HttpSource, HTTP_ON)(),
            FatalSourceError,
            "KR growth/signups: http source: ",
            "connection",
            "api",
        ),
        (
            lambda _: _fetch(HttpSource, HTTP)(),
            FatalSourceError,
            "KR growth/signups: http source: ",
            "secret",
            "api.key",
        ),
        (
            lambda _: resolve_channel("json://h.example.com/${secret:hook-token}", ENV.secrets),
            ChannelConfigError,
            "json://h.example.com: channel URL: ",
            "secret",
            "hook-token",
        ),
        (_preflight, ConfigError, "alerts.yaml: route 'pm': ", "secret", "hook-token"),
    ],
)
def test_every_caller_says_the_one_message(
    run: Callable[[Path], object],
    error: type[Exception],
    prefix: str,
    kind: Literal["connection", "secret"],
    name: str,
    tmp_path: Path,
) -> None:
    known = ENV.connections if kind == "connection" else ENV.secrets
    with pytest.raises(error) as info:
        run(tmp_path)
    assert str(info.value) == prefix + unknown_name_message(kind, name, known)
    assert "s3cr3t-value" not in str(info.value)
