"""The ``manual`` source (connectors/manual.py): its config, and the contract where it applies.

A manual KR is never fetched: the run reads its check-ins from the store
(tests/run/test_checkin.py). Called directly, ``fetch`` refuses with how to record a value;
the contract's checks that need a fetched value are replaced by checks of that refusal.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from okr_pipeline.connectors.base import SourceEnvironment
from okr_pipeline.connectors.contract_checks import check_no_secrets, secret_values
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.manual import ManualSource, ManualSourceConfig
from okr_pipeline.connectors.registry import parse_source_config
from okr_pipeline.connectors.testing import ConnectorContract


def test_config_is_the_type_alone() -> None:
    config = parse_source_config({"type": "manual"})
    assert isinstance(config, ManualSourceConfig)
    assert config.connection_names() == set() and config.secret_names() == set()
    # A check-in is recorded for an as-of: a backfill scores the one in force then.
    assert config.uses_as_of()
    with pytest.raises(ValidationError, match="query"):
        parse_source_config({"type": "manual", "query": "SELECT 1"})


class TestManualContract(ConnectorContract):
    """The contract, where it applies: nothing is called, so nothing can time out, be
    rate-limited, fail on a server, be refused or answer in the wrong shape; and ``fetch``
    never returns a value.
    """

    source_class = ManualSource
    expected_value = None
    not_applicable: ClassVar[Mapping[str, str]] = {
        "timeout": "a manual KR makes no external call",
        "rate_limited": "a manual KR makes no external call",
        "server_error": "a manual KR makes no external call",
        "unauthorized": "a manual KR signs in nowhere",
        "bad_shape": "a manual KR reads no answer",
    }

    def environment(self) -> SourceEnvironment:
        # A secret the source never uses: the leak checks still look for it everywhere.
        return SourceEnvironment(secrets={"unused": SecretStr("manual-7f3a9c1e-SECRET")})

    def valid_config(self) -> Mapping[str, Any]:
        return {"type": "manual"}

    def _refusal(self, source: ManualSource) -> str:
        config = ManualSourceConfig.model_validate(self.valid_config())
        with pytest.raises(FatalSourceError) as caught:
            source.fetch(config, self.context())
        return str(caught.value)

    def test_fetch_returns_the_expected_decimal(self) -> None:
        """Replaced: ``fetch`` refuses, naming the KR and how to record a value."""
        with ManualSource(self.environment()) as source:
            message = self._refusal(source)
        assert message == (
            "contract/kr: a manual KR is not fetched; record a value with "
            "'okr checkin contract/kr VALUE'"
        )

    def test_missing_fields_named(self) -> None:
        """Replaced: ``type`` is the whole config, so nothing can be missing."""
        assert ManualSourceConfig.model_validate({"type": "manual"}).type == "manual"

    def test_failure_is_classified(self) -> None:  # type: ignore[override]
        """Replaced: the one failure is the refusal, fatal (a retry cannot help)."""
        with ManualSource(self.environment()) as source:
            assert "okr checkin" in self._refusal(source)

    def test_no_secret_in_reprs(self) -> None:
        """The source, its environment, its config and its refusal never show a secret."""
        env = self.environment()
        with ManualSource(env) as source:
            texts = {
                "repr(env)": repr(env),
                "repr(config)": repr(ManualSourceConfig(type="manual")),
                "repr(source)": repr(source),
                "refusal": self._refusal(source),
            }
        check_no_secrets(texts, secret_values(env))

    def test_fetch_is_thread_safe(self) -> None:
        """Many threads at once all get the same refusal."""
        with ManualSource(self.environment()) as source:
            messages: list[str] = []
            lock = threading.Lock()

            def one() -> None:
                message = self._refusal(source)
                with lock:
                    messages.append(message)

            threads = [threading.Thread(target=one) for _ in range(self.threads)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert len(messages) == self.threads and len(set(messages)) == 1

    def test_close_is_idempotent(self) -> None:
        """``close()`` twice raises nothing."""
        source = ManualSource(self.environment())
        source.close()
        source.close()
