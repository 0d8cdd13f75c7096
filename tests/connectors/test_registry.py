"""Registry: entry points, unknown types, config parsing and reference checks.

Other connectors may be installed next to the built-ins (the data team's own package, a
plugin), so the tests assert that the built-ins are present and correct, not that they are
the only ones; ``installed`` runs them once as installed and once with a simulated
third-party connector added.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from okr_pipeline.connectors import registry
from okr_pipeline.connectors.amplitude import AmplitudeSource
from okr_pipeline.connectors.base import SourceEnvironment
from okr_pipeline.connectors.csv_source import CsvSource
from okr_pipeline.connectors.datadog import DatadogSource
from okr_pipeline.connectors.errors import SourceConfigError
from okr_pipeline.connectors.formula import FormulaSource
from okr_pipeline.connectors.github import GithubSource
from okr_pipeline.connectors.google_analytics import GoogleAnalyticsSource
from okr_pipeline.connectors.http import HttpSource, HttpSourceConfig
from okr_pipeline.connectors.jira import JiraSource
from okr_pipeline.connectors.manual import ManualSource
from okr_pipeline.connectors.mixpanel import MixpanelSource
from okr_pipeline.connectors.plausible import PlausibleSource
from okr_pipeline.connectors.posthog import PosthogSource
from okr_pipeline.connectors.prometheus import PrometheusSource
from okr_pipeline.connectors.sql import SqlSource, SqlSourceConfig
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.connectors.contract_fakes import MemorySource

NotASource = dict  # an importable object that is not a BaseSource
BUILTINS: dict[str, type[Any]] = {
    "amplitude": AmplitudeSource,
    "csv": CsvSource,
    "datadog": DatadogSource,
    "formula": FormulaSource,
    "github": GithubSource,
    "google_analytics": GoogleAnalyticsSource,
    "http": HttpSource,
    "jira": JiraSource,
    "manual": ManualSource,
    "mixpanel": MixpanelSource,
    "plausible": PlausibleSource,
    "posthog": PosthogSource,
    "prometheus": PrometheusSource,
    "sql": SqlSource,
}
THIRD_PARTY = EntryPoint(
    "memory", "tests.connectors.contract_fakes:MemorySource", registry.ENTRY_POINT_GROUP
)


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    eps: list[EntryPoint] = []
    monkeypatch.setattr(registry, "entry_points", lambda group: list(eps))
    registry.reset_cache()
    yield eps
    registry.reset_cache()


def _add_third_party(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [*entry_points(group=registry.ENTRY_POINT_GROUP), THIRD_PARTY]
    monkeypatch.setattr(registry, "entry_points", lambda group: list(eps))


@pytest.fixture(params=["as_installed", "with_third_party"])
def installed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The registry as installed, then with a third-party connector installed as well."""
    if request.param == "with_third_party":
        _add_third_party(monkeypatch)
    registry.reset_cache()
    yield str(request.param)
    registry.reset_cache()


def valid_types() -> str:
    """The "Valid: ..." list of messages: every installed type, sorted."""
    return ", ".join(sorted(registry.SOURCE_TYPES))


def test_builtin_types_registered(installed: str):
    types = registry.source_types()
    assert {name: types[name] for name in BUILTINS} == BUILTINS
    assert registry.get_source_class("sql") is SqlSource
    assert list(registry.SOURCE_TYPES) == sorted(types)


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _add_third_party(monkeypatch)
    registry.reset_cache()
    yield
    registry.reset_cache()


def test_third_party_connector_is_listed(third_party: None):
    assert registry.get_source_class("memory") is MemorySource
    installed = {ep.name for ep in entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert BUILTINS.keys() <= installed
    assert list(registry.SOURCE_TYPES) == sorted({*installed, "memory"})
    rows = {row.type: row for row in registry.describe_sources()}
    assert rows["memory"].class_path == "tests.connectors.contract_fakes.MemorySource"
    assert rows["memory"].doc.startswith("Returns a value held in memory")
    with pytest.raises(SourceConfigError, match=re.escape(f"Valid: {valid_types()}")):
        registry.parse_source_config({"type": "ga5"})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ga5", "Unknown source type 'ga5'. Valid: {valid}."),
        ("sq", "Unknown source type 'sq'. Valid: {valid}. Did you mean 'sql'?"),
        ("htp", "Did you mean 'http'?"),
    ],
)
def test_unknown_type(installed: str, name: str, message: str):
    with pytest.raises(SourceConfigError) as info:
        registry.parse_source_config({"type": name})
    assert message.format(valid=valid_types()) in str(info.value)
    assert info.value.loc == ("type",)
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "The source has no 'type'. Valid: {valid}."),
        ({"type": 3}, "The source 'type' must be a string"),
        (["sql"], "A source must be a mapping"),
    ],
)
def test_malformed_source(installed: str, raw: Any, message: str):
    with pytest.raises(SourceConfigError) as info:
        registry.parse_source_config(raw)
    assert message.format(valid=valid_types()) in str(info.value)


def test_parse_returns_the_types_model(installed: str):
    cfg = registry.parse_source_config({"type": "sql", "connection": "wh", "query": "SELECT 1"})
    assert isinstance(cfg, SqlSourceConfig)
    cfg2 = registry.parse_source_config(
        {"type": "http", "url": "https://x.test/m", "value_path": "$.v"}
    )
    assert isinstance(cfg2, HttpSourceConfig)


def test_bad_fields_raise_validation_error_with_locations():
    with pytest.raises(ValidationError) as info:
        registry.parse_source_config(
            {
                "type": "sql",
                "connection": "wh",
                "query": "SELECT 1",
                "colunm": "x",
                "timeout_seconds": -1,
            }
        )
    locs = {tuple(e["loc"]) for e in info.value.errors()}
    assert locs == {("colunm",), ("timeout_seconds",)}


def test_non_subclass_entry_point_rejected(fake_entry_points: list[EntryPoint]):
    fake_entry_points.append(
        EntryPoint("bogus", "tests.connectors.test_registry:NotASource", registry.ENTRY_POINT_GROUP)
    )
    with pytest.raises(SourceConfigError) as info:
        registry.get_source_class("bogus")
    message = str(info.value)
    assert "'bogus'" in message and "tests.connectors.test_registry:NotASource" in message
    assert "not a subclass of connectors.base.BaseSource" in message


def test_unimportable_entry_point(fake_entry_points: list[EntryPoint]):
    fake_entry_points.append(EntryPoint("gone", "no_such_pkg.mod:X", registry.ENTRY_POINT_GROUP))
    with pytest.raises(SourceConfigError, match="failed to import: ModuleNotFoundError"):
        registry.get_source_class("gone")
    rows = registry.describe_sources()
    assert rows[0].type == "gone" and rows[0].doc.startswith("unavailable:")


def test_type_name_must_match_entry_point(fake_entry_points: list[EntryPoint]):
    fake_entry_points.append(
        EntryPoint("web", "okr_pipeline.connectors.http:HttpSource", registry.ENTRY_POINT_GROUP)
    )
    with pytest.raises(SourceConfigError, match="must set type_name = 'web'"):
        registry.get_source_class("web")


def test_conflicting_registrations(fake_entry_points: list[EntryPoint]):
    fake_entry_points.append(
        EntryPoint("sql", "okr_pipeline.connectors.sql:SqlSource", "okr.connectors")
    )
    fake_entry_points.append(EntryPoint("sql", "other.sql:SqlSource", "okr.connectors"))
    with pytest.raises(SourceConfigError, match="registered twice"):
        registry.get_source_class("sql")


def test_lazy_import(fake_entry_points: list[EntryPoint]):
    fake_entry_points.append(EntryPoint("gone", "no_such_pkg.mod:X", registry.ENTRY_POINT_GROUP))
    fake_entry_points.append(
        EntryPoint("sql", "okr_pipeline.connectors.sql:SqlSource", "okr.connectors")
    )
    # Only the asked-for type is imported; the broken one does not get in the way.
    assert registry.get_source_class("sql") is SqlSource
    assert "gone" in registry.SOURCE_TYPES


def test_describe_sources(installed: str):
    rows = registry.describe_sources()
    assert [r.type for r in rows] == sorted(registry.SOURCE_TYPES)
    by_type = {r.type: r for r in rows}
    assert BUILTINS.keys() <= by_type.keys()
    assert by_type["http"].class_path == "okr_pipeline.connectors.http.HttpSource"
    sql_row = by_type["sql"]
    assert sql_row.class_path == "okr_pipeline.connectors.sql.SqlSource"
    assert sql_row.distribution.startswith("okr-pipeline ")
    assert sql_row.doc.startswith("Runs a read-only SQL query")


ENV = SourceEnvironment(
    connections={"warehouse": ConnectionSettings(url=SecretStr("sqlite://"))},
    secrets={"ga_token": SecretStr("s3cr3t-value")},
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"type": "sql", "connection": "wh", "query": "SELECT 1"},
            "unknown connection 'wh'. Known connections: warehouse. "
            "Define it with OKR_CONNECTIONS__WH__URL=...",
        ),
        (
            {
                "type": "http",
                "url": "https://x.test/m",
                "value_path": "$.v",
                "auth": {"type": "bearer", "secret": "ga_tokn"},
            },
            "unknown secret 'ga_tokn'. Known secrets: ga_token. Did you mean 'ga_token'? "
            "Define it with OKR_SECRETS__GA_TOKN",
        ),
        (
            {"type": "http", "url": "https://x.test/m?k=${secret:other}", "value_path": "$.v"},
            "unknown secret 'other'",
        ),
        (
            {"type": "http", "url": "https://x.test/m?k=${secret:api.key}", "value_path": "$.v"},
            "unknown secret 'api.key'. Known secrets: ga_token. Define it with "
            "[secrets] \"api.key\" = ... in okr.toml (a name with '.' cannot be",
        ),
    ],
)
def test_check_references(raw: dict[str, Any], message: str):
    cfg = registry.parse_source_config(raw)
    with pytest.raises(SourceConfigError) as info:
        registry.check_references(cfg, ENV)
    assert message in str(info.value)
    assert "s3cr3t-value" not in str(info.value)


def test_check_references_ok():
    cfg = registry.parse_source_config(
        {
            "type": "http",
            "url": "https://x.test/m",
            "value_path": "$.v",
            "auth": {"type": "bearer", "secret": "ga_token"},
        }
    )
    registry.check_references(cfg, ENV)
