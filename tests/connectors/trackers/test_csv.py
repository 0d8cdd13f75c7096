"""The ``csv`` source on real files (tmp_path) and on CSV served by the local HTTP server."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from okr_pipeline.connectors.base import BaseSource, SourceContext, SourceEnvironment
from okr_pipeline.connectors.csv_source import CsvSource, CsvSourceConfig
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.testing import Case, ConnectorContract
from tests.connectors.trackers import servers
from tests.connectors.trackers.conftest import environment

SHEET = servers.CSV_FILES["/sheet.csv"]


def fetch(env: SourceEnvironment, ctx: SourceContext, **raw: Any) -> Decimal | None:
    with CsvSource(env, sleep=lambda s: None) as source:
        return source.fetch(CsvSourceConfig.model_validate({"type": "csv", **raw}), ctx)


@pytest.fixture
def sheet(tmp_path: Path) -> str:
    path = tmp_path / "sheet.csv"
    path.write_text(SHEET)
    return str(path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The row for the as-of: the last week on or before 2024-05-01 (2024-05-06 is after).
        ({"column": "signups", "where": {"team": "web"}, "as_of_column": "week"}, "15"),
        ({"column": "signups", "aggregate": "sum", "as_of_column": "week"}, "42"),
        ({"column": "signups", "aggregate": "sum"}, "141"),
        ({"column": "signups", "aggregate": "avg", "where": {"team": "web"}}, "34"),
        ({"column": "signups", "aggregate": "min"}, "5"),
        ({"column": "signups", "aggregate": "max", "as_of_column": "week"}, "15"),
        ({"column": "signups", "aggregate": "last", "where": {"team": "web"}}, "99"),
        ({"column": "signups", "aggregate": "last", "as_of_column": "week"}, "15"),
        ({"column": "revenue", "aggregate": "count"}, "5"),
        (
            {
                "column": "revenue",
                "aggregate": "sum",
                "thousands_separator": ",",
                "as_of_column": "week",
            },
            "3400.50",
        ),
        ({"column": "signups", "where": {"week": "2024-04-01", "team": "app"}}, "5"),
    ],
)
def test_cells_and_aggregates(
    sheet: str, ctx: SourceContext, raw: dict[str, Any], expected: str
) -> None:
    value = fetch(SourceEnvironment(), ctx, path=sheet, **raw)
    assert value == Decimal(expected) and str(value) == expected


def test_nothing_on_or_before_the_as_of_is_no_data(sheet: str, ctx: SourceContext) -> None:
    early = SourceContext(ctx.as_of.replace(year=2023), ctx.cycle_start, ctx.cycle_end, "d/k")
    assert (
        fetch(SourceEnvironment(), early, path=sheet, column="signups", as_of_column="week") is None
    )


def test_empty_cell_is_no_data(tmp_path: Path, ctx: SourceContext) -> None:
    (tmp_path / "a.csv").write_text("k,v\na,\nb,2\n")
    raw = {"path": str(tmp_path / "a.csv"), "column": "v", "where": {"k": "a"}}
    assert fetch(SourceEnvironment(), ctx, **raw) is None
    assert fetch(SourceEnvironment(), ctx, **{**raw, "where": {"k": "zz"}}) is None


def test_formats(tmp_path: Path, ctx: SourceContext) -> None:
    (tmp_path / "f.csv").write_text("k;v\npct;12,5%\nbig;1 234,5\n")
    raw = {"path": str(tmp_path / "f.csv"), "column": "v", "delimiter": ";"}
    eu = {**raw, "decimal_separator": ","}
    pct = {"where": {"k": "pct"}}
    assert fetch(SourceEnvironment(), ctx, **eu, **pct, percent="number") == Decimal("12.5")
    assert fetch(SourceEnvironment(), ctx, **eu, **pct, percent="fraction") == Decimal("0.125")
    big = {"where": {"k": "big"}, "thousands_separator": " "}
    assert fetch(SourceEnvironment(), ctx, **eu, **big) == Decimal("1234.5")
    with pytest.raises(FatalSourceError, match="percentage; set percent"):
        fetch(SourceEnvironment(), ctx, **eu, **pct)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"column": "revenue", "aggregate": "sum"}, "set thousands_separator"),
        ({"column": "signups"}, "5 rows match .lines 2, 3, 4, 5, 6.; narrow where"),
        ({"column": "signup"}, "no column 'signup'; the columns are: 'week', 'team'"),
        ({"column": "team", "where": {"team": "web"}, "aggregate": "sum"}, "line 2.*'web'"),
        ({"column": "signups", "as_of_column": "team"}, "'web' is not a date"),
    ],
)
def test_errors_are_clear(
    sheet: str, ctx: SourceContext, raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(FatalSourceError, match=message) as info:
        fetch(SourceEnvironment(), ctx, path=sheet, **raw)
    assert "delivery/kr" in str(info.value)


def test_missing_file(tmp_path: Path, ctx: SourceContext) -> None:
    with pytest.raises(FatalSourceError, match="cannot read"):
        fetch(SourceEnvironment(), ctx, path=str(tmp_path / "nope.csv"), column="v")


def test_relative_path_is_from_the_current_folder(
    sheet: str, ctx: SourceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(sheet).parent)
    assert fetch(SourceEnvironment(), ctx, path="sheet.csv", column="signups", aggregate="min")


@pytest.mark.usefixtures("cassette")
def test_url(live_env: SourceEnvironment, tracker_url: str, ctx: SourceContext) -> None:
    raw = {"url": f"{tracker_url}/sheet.csv", "column": "signups", "as_of_column": "week"}
    assert fetch(live_env, ctx, **raw, where={"team": "web"}) == Decimal(15)


@pytest.mark.usefixtures("cassette")
def test_url_key_from_a_secret(
    live_env: SourceEnvironment, tracker_url: str, ctx: SourceContext
) -> None:
    raw = {"url": f"{tracker_url}/keyed.csv?key=${{secret:csv_key}}", "column": "b"}
    assert fetch(live_env, ctx, **raw) == Decimal(2)


@pytest.mark.usefixtures("cassette")
def test_url_redirect_is_followed(
    live_env: SourceEnvironment, tracker_url: str, ctx: SourceContext
) -> None:
    raw = {"url": f"{tracker_url}/published.csv", "column": "signups", "aggregate": "max"}
    assert fetch(live_env, ctx, **raw) == Decimal(99)


def test_redirect_loop_ends(
    live_env: SourceEnvironment, tracker_url: str, ctx: SourceContext
) -> None:
    with pytest.raises(FatalSourceError, match="more than 3 redirects"):
        fetch(live_env, ctx, url=f"{tracker_url}/loop.csv", column="v")


def test_time_placeholder_in_url(tracker_url: str) -> None:
    raw = {"type": "csv", "column": "v", "url": f"{tracker_url}/x.csv?day=${{as_of:date}}"}
    assert CsvSourceConfig.model_validate(raw).uses_as_of()
    assert not CsvSourceConfig.model_validate({**raw, "url": f"{tracker_url}/x"}).uses_as_of()


def test_url_refused_key_is_redacted(
    live_env: SourceEnvironment, tracker_url: str, ctx: SourceContext
) -> None:
    raw = {"url": f"{tracker_url}/keyed.csv?key=${{secret:jira_pat}}", "column": "b"}
    with pytest.raises(FatalSourceError, match="HTTP 403") as info:
        fetch(live_env, ctx, **raw)
    assert servers.JIRA_PAT not in str(info.value)


def test_url_retried_after_a_5xx(
    live_env: SourceEnvironment, tracker_url: str, ctx: SourceContext
) -> None:
    raw = {"url": f"{tracker_url}/flaky.csv?run={uuid.uuid4().hex}", "column": "total"}
    assert fetch(live_env, ctx, **raw) == Decimal(7)


def test_url_size_cap(live_env: SourceEnvironment, tracker_url: str, ctx: SourceContext) -> None:
    raw = {"column": "total", "aggregate": "count", "max_response_bytes": 1024}
    with pytest.raises(FatalSourceError, match="more than max_response_bytes"):
        fetch(live_env, ctx, url=f"{tracker_url}/big.csv", **raw)
    assert fetch(live_env, ctx, url=f"{tracker_url}/flaky.csv?run=cap", **raw) == Decimal(1)


def test_local_size_cap(tmp_path: Path, ctx: SourceContext) -> None:
    (tmp_path / "big.csv").write_text("total\n" + "1\n" * 4096)
    raw = {"path": str(tmp_path / "big.csv"), "column": "total", "max_response_bytes": 1024}
    with pytest.raises(FatalSourceError, match="larger than max_response_bytes"):
        fetch(SourceEnvironment(), ctx, **raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"column": "v"}, "exactly one of path, url or url_secret"),
        ({"column": "v", "path": "a", "url": "https://x.test/a.csv"}, "exactly one"),
        ({"column": "v", "url": "ftp://x.test/a.csv"}, "http.s. URL"),
        ({"column": "v", "url": "https://x.test/${nope}"}, "unknown placeholder"),
        ({"column": "v", "path": "a", "aggregate": "median"}, "aggregate"),
        (
            {"column": "v", "path": "a", "thousands_separator": ",", "decimal_separator": ","},
            "must differ",
        ),
    ],
)
def test_config_messages(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CsvSourceConfig.model_validate({"type": "csv", **raw})


class TestCsvContract(ConnectorContract):
    source_class = CsvSource
    expected_value = Decimal(15)

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        return CsvSource(env, sleep=lambda s: None)

    def environment(self) -> SourceEnvironment:
        return environment(self.fixture("tracker_url"))

    def valid_config(self) -> Mapping[str, Any]:
        return {
            "type": "csv",
            "url": f"{self.fixture('tracker_url')}/sheet.csv",
            "column": "signups",
            "where": {"team": "web"},
            "as_of_column": "week",
        }

    def required_fields(self) -> set[str]:
        return {"column"}

    def failing_config(self, scenario: str) -> Mapping[str, Any] | Case | None:
        base = f"{self.fixture('tracker_url')}"
        urls = {
            "timeout": f"{base}/slow.csv",
            "rate_limited": f"{base}/status-429.csv",
            "server_error": f"{base}/status-503.csv",
            "unauthorized": f"{base}/keyed.csv?key=${{secret:jira_pat}}",
            "bad_shape": f"{base}/sheet.csv",
        }
        config = {**self.valid_config(), "url": urls[scenario], "retries": 1}
        if scenario == "timeout":
            config["timeout_seconds"] = 0.5
        if scenario == "bad_shape":
            config["column"] = "nope"
        if scenario == "unauthorized":
            config["column"] = "b"
            config.pop("where"), config.pop("as_of_column")
        return config
