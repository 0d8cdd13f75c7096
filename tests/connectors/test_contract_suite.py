"""The contract suite itself: a correct connector passes it, a broken one fails each check.

``TestMemoryContract`` uses the suite as a third-party connector would (outside the
registry). The rest shows that the checks can fail: called directly on ``BrokenSource``,
and through pytest in a child process, where exactly the checks it breaks fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import ConfigDict, Field, SecretStr

from okr_pipeline.connectors.base import BaseSourceConfig, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.connectors.testing import (
    SCENARIOS,
    ConnectorContract,
    check_close_idempotent,
    check_failure,
    check_missing_fields_named,
    check_no_secrets,
    check_thread_safety,
    check_unknown_field_refused,
    check_value,
    secret_values,
)
from okr_pipeline.okr_core.settings import ConnectionSettings
from tests.connectors.contract_fakes import SECRET, BrokenSource, MemorySource

ROOT = Path(__file__).resolve().parents[2]
ENV = SourceEnvironment(secrets={"api": SecretStr(SECRET)})


class TestMemoryContract(ConnectorContract):
    source_class = MemorySource
    expected_value = Decimal("41.5")
    registered = False

    def environment(self) -> SourceEnvironment:
        return ENV

    def valid_config(self) -> Mapping[str, Any]:
        return {"type": "memory", "value": "41.5", "token": "api"}

    def failing_config(self, scenario: str) -> Mapping[str, Any]:
        return {**self.valid_config(), "mode": scenario}


def test_a_float_is_refused():
    with pytest.raises(AssertionError, match=r"returned float 41\.5; return a Decimal"):
        check_value(41.5, Decimal("41.5"))
    for wrong in (True, 41, "41.5"):
        with pytest.raises(AssertionError, match="return a Decimal"):
            check_value(wrong, Decimal(1))
    with pytest.raises(AssertionError, match="return None for no data"):
        check_value(Decimal("NaN"), Decimal(1))
    with pytest.raises(AssertionError, match="expected Decimal"):
        check_value(Decimal(2), Decimal(1))
    check_value(None, None)


def test_broken_source_fails_the_checks(ctx):
    source = BrokenSource(ENV)
    config = BrokenSource.config_model.model_validate(
        {"type": "broken", "value": "41.5", "token": "api"}
    )

    def failing(mode: str) -> Any:
        return lambda: source.fetch(config.model_copy(update={"mode": mode}), ctx)

    with pytest.raises(AssertionError, match="returned float"):
        check_value(source.fetch(config, ctx), Decimal("41.5"))
    with pytest.raises(AssertionError, match=r"raised Exception: .*expected RetriableSourceError"):
        check_failure(failing("rate_limited"), RetriableSourceError, ctx.kr_ref, [SECRET])
    with pytest.raises(AssertionError, match=r"a secret leaks through str\(error\)"):
        check_failure(failing("server_error"), RetriableSourceError, ctx.kr_ref, [SECRET])
    with pytest.raises(AssertionError, match="gave"):
        check_thread_safety(lambda: source.fetch(config, ctx), Decimal("41.5"), threads=4)
    # What it does right still passes.
    check_failure(failing("unauthorized"), FatalSourceError, ctx.kr_ref, [SECRET])


def test_wrong_class_and_missing_kr_are_refused(ctx):
    source = MemorySource(ENV)
    config = MemorySource.config_model.model_validate(
        {"type": "memory", "value": "1", "token": "api", "mode": "timeout"}
    )
    with pytest.raises(AssertionError, match=r"raised RetriableSourceError.*expected Fatal"):
        check_failure(lambda: source.fetch(config, ctx), FatalSourceError, ctx.kr_ref, [])
    with pytest.raises(AssertionError, match="does not name the KR 'other/kr'"):
        check_failure(lambda: source.fetch(config, ctx), RetriableSourceError, "other/kr", [])
    with pytest.raises(AssertionError, match="returned Decimal"):
        check_failure(
            lambda: source.fetch(config.model_copy(update={"mode": "ok"}), ctx),
            RetriableSourceError,
            ctx.kr_ref,
            [],
        )


class _LaxConfig(BaseSourceConfig):
    """Accepts unknown keys and needs nothing: both against the contract."""

    model_config = ConfigDict(extra="allow")
    type: Literal["lax"] = Field(description="Type.")
    query: str = Field("", description="Has a default, so a missing one is not reported.")


def test_lax_config_fails_the_validation_checks():
    with pytest.raises(AssertionError, match="'bogus_key' was accepted"):
        check_unknown_field_refused(_LaxConfig, {"type": "lax"})
    with pytest.raises(AssertionError, match="with only 'type' was accepted"):
        check_missing_fields_named(_LaxConfig, "lax", {"query"})
    # The built-in model names its missing field; asking for one it lacks is reported.
    model = MemorySource.config_model
    check_missing_fields_named(model, "memory", {"value", "token"})
    with pytest.raises(AssertionError, match=r"does not name the missing fields \['colour'\]"):
        check_missing_fields_named(model, "memory", {"value", "colour"})


def test_secret_values_of_an_environment():
    env = SourceEnvironment(
        connections={
            "db": ConnectionSettings(url=SecretStr("postgresql://bob:pw-1234567@h/db")),
            "api": ConnectionSettings(
                url=SecretStr("https://api.test"), headers={"X-Key": SecretStr("hdr-7654321")}
            ),
        },
        secrets={"s": SecretStr(SECRET)},
    )
    assert secret_values(env) == {"pw-1234567", "hdr-7654321", SECRET}
    with pytest.raises(AssertionError, match="a secret leaks through repr"):
        check_no_secrets({"repr": f"X(token={SECRET!r})"}, secret_values(env))


def test_close_twice_must_not_raise():
    class ClosesOnce(MemorySource):
        """Raises on a second close."""

        closed = False

        def close(self) -> None:
            if self.closed:
                raise RuntimeError("already closed")
            self.closed = True

    check_close_idempotent(MemorySource(ENV))
    with pytest.raises(RuntimeError, match="already closed"):
        check_close_idempotent(ClosesOnce(ENV))


BROKEN_TEST_FILE = """
from decimal import Decimal

from okr_pipeline.connectors.base import SourceEnvironment
from okr_pipeline.connectors.testing import ConnectorContract
from pydantic import SecretStr

from tests.connectors.contract_fakes import SECRET, BrokenSource


class TestBrokenContract(ConnectorContract):
    source_class = BrokenSource
    expected_value = Decimal("41.5")
    registered = False
    not_applicable = {"timeout": "cannot be made slow"}
    known_defects = {"unauthorized": "declared broken, but it is not"}

    def environment(self):
        return SourceEnvironment(secrets={"api": SecretStr(SECRET)})

    def valid_config(self):
        return {"type": "broken", "value": "41.5", "token": "api"}

    def failing_config(self, scenario):
        return {**self.valid_config(), "mode": scenario}
"""


def _outcomes(report: Path) -> dict[str, str]:
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        outcomes[case.attrib["name"]] = "failed" if failed else "skipped" if skipped else "passed"
    return outcomes


def test_broken_connector_fails_exactly_the_checks_it_breaks(tmp_path: Path):
    test_file = tmp_path / "test_broken_contract.py"
    test_file.write_text(textwrap.dedent(BROKEN_TEST_FILE))
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"),
            *(f"--junitxml={report}", "--rootdir", str(tmp_path), str(test_file)),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    outcomes = _outcomes(report)
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    assert failed == [
        "test_failure_is_classified[rate_limited]",
        "test_failure_is_classified[server_error]",
        "test_failure_is_classified[unauthorized]",  # a known defect that passes is reported
        "test_fetch_is_thread_safe",
        "test_fetch_returns_the_expected_decimal",
    ], result.stdout
    # Not applicable: not generated at all (a skip would look like something missing).
    assert "test_failure_is_classified[timeout]" not in outcomes
    assert "skipped" not in outcomes.values()
    # Every other check ran and passed.
    assert list(outcomes.values()).count("passed") == 9 + len(SCENARIOS) - len(failed) - 1
    assert "returned float 41.5" in result.stdout
    assert "raised Exception: KR contract/kr: broken source: HTTP 429" in result.stdout
    assert "a secret leaks through str(error)" in result.stdout
    assert "scenario 'unauthorized' passes now: remove it from known_defects" in result.stdout


def test_the_connectors_package_does_not_import_pytest():
    # Only connectors.testing needs pytest; a run, the okr command and the checks do not.
    code = (
        "import sys\n"
        "import okr_pipeline.connectors.contract_checks, okr_pipeline.connectors.registry\n"
        "import okr_pipeline.connectors.http, okr_pipeline.connectors.sql\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"
