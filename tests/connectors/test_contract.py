"""One contract every registered connector must meet, run over the registry.

A connector added through the ``okr.connectors`` entry points must add a case to CASES:
a valid config, an environment with distinctive secrets, and a config that fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, get_args

import pytest
from okr_pipeline.connectors import registry
from okr_pipeline.connectors.base import (
    BaseSource,
    BaseSourceConfig,
    SourceContext,
    SourceEnvironment,
)
from okr_pipeline.connectors.errors import SourceConfigError, SourceError
from okr_pipeline.okr_core.settings import ConnectionSettings
from pydantic import SecretStr, ValidationError

from tests.connectors import http_server

SECRET = "ctr-8e0b3d51-SECRET"


@dataclass
class Case:
    env: Callable[[Any], SourceEnvironment]  # given the pytest request
    valid: dict[str, Any]
    failing: dict[str, Any]  # valid config whose fetch fails, with SECRET in play
    required: set[str]


def _sql_env(request: Any) -> SourceEnvironment:
    url = request.getfixturevalue("sqlite_url")
    return SourceEnvironment(
        connections={
            "wh": ConnectionSettings(url=SecretStr(url)),
            # A server that is not there, with a password that must never be shown.
            "down": ConnectionSettings(
                url=SecretStr(f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:1/x"),
                timeout_seconds=2,
            ),
        },
        secrets={"unused": SecretStr(SECRET)},
    )


def _http_env(request: Any) -> SourceEnvironment:
    request.getfixturevalue("http_base_url")
    return SourceEnvironment(
        connections={"api": ConnectionSettings(url=SecretStr(http_server.BASE_URL))},
        secrets={"tok": SecretStr(http_server.SECRETS["api_token"]), "wrong": SecretStr(SECRET)},
    )


CASES: dict[str, Case] = {
    "sql": Case(
        env=_sql_env,
        valid={"type": "sql", "connection": "wh", "query": "SELECT 41.5 AS value"},
        failing={"type": "sql", "connection": "down", "query": "SELECT 1"},
        required={"connection", "query"},
    ),
    "http": Case(
        env=_http_env,
        valid={
            "type": "http",
            "connection": "api",
            "path": "/bearer",
            "value_path": "$.total",
            "auth": {"type": "bearer", "secret": "tok"},
        },
        failing={
            "type": "http",
            "connection": "api",
            "path": "/echo",
            "retries": 0,
            "params": {"token": "${secret:wrong}"},
            "value_path": "$.query",
        },
        required={"value_path"},
    ),
}

TYPES = sorted(registry.source_types())


@pytest.fixture(params=TYPES)
def type_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def case(type_name: str) -> Case:
    assert type_name in CASES, f"connector {type_name!r} has no contract case in CASES"
    return CASES[type_name]


@pytest.fixture
def source(type_name: str, case: Case, request: pytest.FixtureRequest) -> Any:
    with registry.get_source_class(type_name)(case.env(request)) as src:
        yield src


@pytest.fixture
def ctx_() -> SourceContext:
    from datetime import UTC, datetime

    return SourceContext(
        datetime(2024, 5, 1, tzinfo=UTC),
        datetime(2024, 4, 1, tzinfo=UTC),
        datetime(2024, 7, 1, tzinfo=UTC),
        "obj/kr",
    )


def test_class_declares_its_type(type_name: str):
    cls = registry.get_source_class(type_name)
    assert issubclass(cls, BaseSource)
    assert cls.type_name == type_name
    assert issubclass(cls.config_model, BaseSourceConfig)
    assert get_args(cls.config_model.model_fields["type"].annotation) == (type_name,)
    assert (cls.__doc__ or "").strip(), "source classes need a docstring (okr connectors)"


def test_every_field_is_described(type_name: str):
    model = registry.get_source_class(type_name).config_model
    schema = model.model_json_schema()
    undocumented = [n for n, p in schema["properties"].items() if not p.get("description")]
    assert undocumented == []


def test_valid_config_parses(case: Case):
    cfg = registry.parse_source_config(case.valid)
    assert cfg.type == case.valid["type"]
    assert cfg.concurrency_key().startswith(f"{cfg.type}:")


def test_unknown_keys_rejected(case: Case):
    with pytest.raises(ValidationError) as info:
        registry.parse_source_config({**case.valid, "bogus_key": 1})
    [error] = info.value.errors()
    assert error["loc"] == ("bogus_key",) and error["type"] == "extra_forbidden"


def test_missing_fields_named(case: Case):
    with pytest.raises(ValidationError) as info:
        registry.parse_source_config({"type": case.valid["type"]})
    missing = {e["loc"][0] for e in info.value.errors() if e["type"] == "missing"}
    assert case.required <= missing


def test_references_checked(case: Case, request: pytest.FixtureRequest):
    cfg = registry.parse_source_config(case.valid)
    registry.check_references(cfg, case.env(request))
    with pytest.raises(SourceConfigError):
        registry.check_references(cfg, SourceEnvironment())


def test_fetch_returns_decimal(source: BaseSource[Any], case: Case, ctx_: SourceContext):
    value = source.fetch(registry.parse_source_config(case.valid), ctx_)
    assert isinstance(value, Decimal)


def test_failing_fetch_raises_source_error_without_secrets(
    source: BaseSource[Any], case: Case, ctx_: SourceContext
):
    cfg = registry.parse_source_config(case.failing)
    with pytest.raises(SourceError) as info:
        source.fetch(cfg, ctx_)
    assert "KR obj/kr" in str(info.value)
    for text in (str(info.value), repr(info.value), repr(cfg), str(cfg), repr(source)):
        assert SECRET not in text


@pytest.mark.parametrize(
    "leak",
    [
        {"headers": {"Authorization": f"Bearer {SECRET}"}},
        {"url": f"https://bob:{SECRET}@x.test/m?api_key={SECRET}"},
        {"params": {"access_token": SECRET}},
    ],
)
def test_literal_secrets_never_in_repr(leak: dict[str, Any]):
    raw = {"type": "http", "value_path": "$.v", "url": "https://x.test/m", **leak}
    cfg = registry.parse_source_config(raw)
    assert SECRET not in repr(cfg) and SECRET not in str(cfg)


def test_close_is_idempotent(source: BaseSource[Any]):
    source.close()
    source.close()
