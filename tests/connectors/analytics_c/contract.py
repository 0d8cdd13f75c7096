"""The contract suite as the three connectors run it against the local vendor server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import SecretStr

from okr_pipeline.connectors.base import BaseSource, SourceEnvironment
from okr_pipeline.connectors.testing import Case, ConnectorContract
from okr_pipeline.okr_core.settings import ConnectionSettings


class VendorContract(ConnectorContract):
    """A connector pointed at the local server by the connection ``local``.

    Attributes:
        secrets: The environment's secrets, by the names the valid config uses.
        triggers: The name (an event, a metric) that makes the server fail as each
            scenario describes, set by :meth:`failing_config` into :attr:`trigger_field`.
        trigger_field: The config field that carries the trigger.
    """

    secrets: ClassVar[Mapping[str, str]]
    triggers: ClassVar[Mapping[str, str]]
    trigger_field: ClassVar[str]

    def make_source(self, env: SourceEnvironment) -> BaseSource[Any]:
        # No waiting between retries: the scenarios retry at once.
        source_class: Any = self.source_class
        built: BaseSource[Any] = source_class(env, sleep=lambda seconds: None)
        return built

    def environment(self) -> SourceEnvironment:
        return self.environment_with()

    def environment_with(self, **changed: str) -> SourceEnvironment:
        """The usual environment with some secrets' values changed."""
        url = SecretStr(self.fixture("vendor_url"))
        return SourceEnvironment(
            connections={"local": ConnectionSettings(url=url, timeout_seconds=5)},
            secrets={
                name: SecretStr(value)
                for name, value in {**self.secret_values(), **changed}.items()
            },
        )

    def secret_values(self) -> Mapping[str, str]:
        """The secrets of the valid config, by name; :attr:`secrets` by default."""
        return self.secrets

    def failing_config(self, scenario: str) -> Mapping[str, Any] | Case | None:
        if scenario == "unauthorized":
            return Case(self.valid_config(), self.wrong_credentials())
        extra = {"timeout_seconds": 0.3} if scenario == "timeout" else {}
        return {**self.valid_config(), self.trigger_field: self.triggers[scenario], **extra}

    def wrong_credentials(self) -> SourceEnvironment:
        """An environment whose credentials the server refuses."""
        raise NotImplementedError
