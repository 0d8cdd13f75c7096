"""The connector contract: the checks every metric source must pass, for your own tests.

Needs pytest (a test-support module: importing ``okr_pipeline.connectors`` does not import
it). Subclass :class:`ConnectorContract` in a test module, name the class ``Test...`` and
fill in the hooks; pytest then runs the standard checks against your connector::

    from decimal import Decimal
    from okr_pipeline.connectors.testing import ConnectorContract

    class TestGa4Contract(ConnectorContract):
        source_class = Ga4Source
        expected_value = Decimal("42")
        not_applicable = {"timeout": "the fake API cannot be made slow"}

        def environment(self):
            return SourceEnvironment(secrets={"ga": SecretStr("ga-7f3a9c1e-SECRET")})

        def valid_config(self):
            return {"type": "ga4", "property": "123", "metric": "users", "token": "ga"}

        def failing_config(self, scenario):
            return {"rate_limited": {...}, "unauthorized": {...}}.get(scenario)

The checks: the class declares its type; every config field is described; unknown fields
are refused and missing required ones named; a fetch returns the expected ``Decimal`` (or
``None``), never a float, int or bool; each failure scenario raises the right error class
(:data:`EXPECTED_ERRORS`) with the KR named and no secret in its message; no secret in the
``repr`` of the source, its environment or its configs; ``fetch`` on one instance from many
threads gives the same answers; ``close()`` may be called twice. The ``check_*`` functions
(from :mod:`connectors.contract_checks`, re-exported here) are the same checks as plain
functions raising ``AssertionError``, for other test runners.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from okr_pipeline.connectors import contract_checks, registry
from okr_pipeline.connectors.base import (
    BaseSource,
    BaseSourceConfig,
    SourceContext,
    SourceEnvironment,
)
from okr_pipeline.connectors.contract_checks import (
    EXPECTED_ERRORS,
    MIN_SECRET_LENGTH,
    SCENARIOS,
    check_close_idempotent,
    check_failure,
    check_fields_described,
    check_missing_fields_named,
    check_no_secrets,
    check_thread_safety,
    check_type_declaration,
    check_unknown_field_refused,
    check_value,
    secret_values,
)
from okr_pipeline.okr_core.errors import ConfigError

# The checks are re-exported, so that connector authors need this one module.
__all__ = ["Case", "ConnectorContract"]
__all__ += contract_checks.__all__


@dataclass(frozen=True)
class Case:
    """A config for one scenario, with the environment it needs when not the usual one.

    Attributes:
        config: The ``source:`` mapping, as written in an OKR file.
        env: The environment to fetch in; ``None`` for :meth:`ConnectorContract.environment`.
    """

    config: Mapping[str, Any]
    env: SourceEnvironment | None = None


class ConnectorContract:
    """Base of a pytest test class running the contract against one connector.

    Set the class attributes, implement :meth:`environment`, :meth:`valid_config` and
    :meth:`failing_config`; override :meth:`make_source` when the constructor takes more
    than the environment. Inside a hook, :meth:`fixture` returns any pytest fixture (a
    database URL, a local server), so a scenario can need a server the others do not.

    Attributes:
        source_class: The connector's ``BaseSource`` subclass.
        expected_value: What :meth:`valid_config` fetches.
        not_applicable: Scenarios the connector cannot meet, with the reason (their tests
            are not generated).
        known_defects: Scenarios known to fail, with the reason: expected to fail, and
            reported as an error once they pass, so the entry is removed with the fix.
        registered: Whether the type must be installed under the ``okr.connectors`` entry
            points (False for a connector tested before it is packaged).
        threads: Threads of the thread-safety check.
    """

    source_class: ClassVar[type[BaseSource[Any]]]
    expected_value: ClassVar[Decimal | None]
    not_applicable: ClassVar[Mapping[str, str]] = {}
    known_defects: ClassVar[Mapping[str, str]] = {}
    registered: ClassVar[bool] = True
    threads: ClassVar[int] = 16

    _request: pytest.FixtureRequest

    # -- hooks -------------------------------------------------------------------------

    def environment(self) -> SourceEnvironment:
        """The connections and secrets of the valid config; secrets should be distinctive.

        Returns:
            The environment.
        """
        raise NotImplementedError("implement environment()")

    def valid_config(self) -> Mapping[str, Any]:
        """A ``source:`` mapping that fetches :attr:`expected_value`.

        Returns:
            The mapping.
        """
        raise NotImplementedError("implement valid_config()")

    def failing_config(self, scenario: str) -> Mapping[str, Any] | Case | None:
        """A config that fails as ``scenario`` describes (see :data:`EXPECTED_ERRORS`).

        Args:
            scenario: One of :data:`SCENARIOS`.

        Returns:
            The config, a :class:`Case` when it needs its own environment, or None when
            the scenario is not arranged (then list it in :attr:`not_applicable`).
        """
        return None

    def required_fields(self) -> set[str]:
        """Keys that a config cannot do without; default: the model's required fields.

        Returns:
            Field names (aliases where a field has one).
        """
        fields = self.source_class.config_model.model_fields
        return {f.alias or name for name, f in fields.items() if f.is_required()} - {"type"}

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        """Create the source under test.

        Args:
            env: The environment to give it.

        Returns:
            A new source instance.
        """
        return self.source_class(env)

    def context(self) -> SourceContext:
        """The evaluation context of every fetch: 2024 Q2, as of 1 May 2024.

        Returns:
            A fixed context, KR ``contract/kr``.
        """
        return SourceContext(
            as_of=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
            cycle_start=datetime(2024, 4, 1, tzinfo=UTC),
            cycle_end=datetime(2024, 7, 1, tzinfo=UTC),
            kr_ref="contract/kr",
        )

    def fixture(self, name: str) -> Any:
        """The value of a pytest fixture, for use inside the hooks.

        Args:
            name: The fixture's name, e.g. ``"postgres_url"``.

        Returns:
            Its value (the test is skipped if the fixture skips).
        """
        return self._request.getfixturevalue(name)

    # -- plumbing ----------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _contract_request(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    def _config(self, raw: Mapping[str, Any]) -> BaseSourceConfig:
        return self.source_class.config_model.model_validate(dict(raw))

    @contextmanager
    def _source(self, env: SourceEnvironment) -> Iterator[BaseSource[Any]]:
        source = self.make_source(env)
        try:
            yield source
        finally:
            source.close()

    # -- the checks --------------------------------------------------------------------

    def test_declares_its_type(self) -> None:
        """The class, its type name and its config model fit together and are documented."""
        check_type_declaration(self.source_class)
        check_fields_described(self.source_class.config_model)
        if self.registered:
            name = self.source_class.type_name
            assert name in registry.SOURCE_TYPES, (
                f"{name!r} is not installed under the {registry.ENTRY_POINT_GROUP!r} entry "
                f"points (or set registered = False)"
            )
            assert registry.get_source_class(name) is self.source_class

    def test_environment_secrets_are_distinctive(self) -> None:
        """The test environment holds secrets long enough for the leak checks to mean much."""
        secrets = secret_values(self.environment())
        assert secrets, "give environment() at least one secret, so leaks can be looked for"
        short = sorted(s for s in secrets if len(s) < MIN_SECRET_LENGTH)
        assert not short, f"secrets shorter than {MIN_SECRET_LENGTH} characters: {short}"

    def test_unknown_field_refused(self) -> None:
        """A misspelt key is an error, not a silently ignored setting."""
        check_unknown_field_refused(self.source_class.config_model, self.valid_config())

    def test_missing_fields_named(self) -> None:
        """A config with only ``type`` is refused, naming the fields it needs."""
        check_missing_fields_named(
            self.source_class.config_model, self.source_class.type_name, self.required_fields()
        )

    def test_references_checked(self) -> None:
        """Connections and secrets the config names are checked against the environment."""
        config = self._config(self.valid_config())
        registry.check_references(config, self.environment())
        if config.connection_names() or config.secret_names():
            with pytest.raises(ConfigError):
                registry.check_references(config, SourceEnvironment())

    def test_fetch_returns_the_expected_decimal(self) -> None:
        """The valid config gives the expected value, exactly, as a Decimal (or None)."""
        config, ctx = self._config(self.valid_config()), self.context()
        with self._source(self.environment()) as source:
            check_value(source.fetch(config, ctx), self.expected_value)
            for value in source.fetch_many([(config, ctx), (config, ctx)]):
                check_value(value, self.expected_value)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One failure test per scenario; those in ``not_applicable`` are not generated.

        Left out rather than skipped: a skip in CI should mean something was missing.
        """
        if "scenario" in metafunc.fixturenames:
            scenarios = [s for s in SCENARIOS if s not in self.not_applicable]
            metafunc.parametrize("scenario", scenarios)

    def test_failure_is_classified(self, scenario: str) -> None:
        """Each failure raises the error class saying whether a retry can help, redacted."""
        arranged = self.failing_config(scenario)
        assert arranged is not None, (
            f"scenario {scenario!r} is not arranged: return a config for it from "
            f"failing_config(), or list it in not_applicable with the reason"
        )
        case = arranged if isinstance(arranged, Case) else Case(arranged)
        env = case.env or self.environment()
        config, ctx = self._config(case.config), self.context()
        secrets = secret_values(env) | secret_values(self.environment())
        with self._source(env) as source:
            try:
                check_failure(
                    lambda: source.fetch(config, ctx),
                    EXPECTED_ERRORS[scenario],
                    ctx.kr_ref,
                    secrets,
                )
            except AssertionError as exc:
                if scenario in self.known_defects:
                    pytest.xfail(f"{self.known_defects[scenario]} ({exc})")
                raise
        assert scenario not in self.known_defects, (
            f"scenario {scenario!r} passes now: remove it from known_defects"
        )

    def test_no_secret_in_reprs(self) -> None:
        """The source, its environment and its config never show a secret."""
        env = self.environment()
        config = self._config(self.valid_config())
        texts = {"repr(env)": repr(env), "repr(config)": repr(config), "str(config)": str(config)}
        with self._source(env) as source:
            source.fetch(config, self.context())  # state built on first use shows too
            texts["repr(source)"], texts["str(source)"] = repr(source), str(source)
        check_no_secrets(texts, secret_values(env))

    def test_fetch_is_thread_safe(self) -> None:
        """Many threads fetching on one instance at once all get the same, right answer."""
        config, ctx = self._config(self.valid_config()), self.context()
        with self._source(self.environment()) as source:
            check_thread_safety(
                lambda: source.fetch(config, ctx), self.expected_value, self.threads
            )

    def test_close_is_idempotent(self) -> None:
        """``close()`` twice, and leaving a ``with`` block after it, raise nothing."""
        with self.make_source(self.environment()) as source:
            source.fetch(self._config(self.valid_config()), self.context())
            check_close_idempotent(source)
