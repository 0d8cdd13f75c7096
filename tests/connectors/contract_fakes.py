"""In-memory connectors for the contract suite's own tests: a correct one and a broken one.

``MemorySource`` meets the contract the way a third-party connector would; ``BrokenSource``
breaks it in three ways (a float result, a secret in an error message, a plain ``Exception``
on 429), so the tests can show that the suite catches each.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from okr_pipeline.connectors.base import BaseSource, BaseSourceConfig, SourceContext
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError

SECRET = "mem-4d1f8a2c-SECRET"

Mode = Literal["ok", "timeout", "rate_limited", "server_error", "unauthorized", "bad_shape"]


class MemorySourceConfig(BaseSourceConfig):
    """A value held in memory, or a failure on demand."""

    type: Literal["memory"] = Field(description="Source type: a value in memory.")
    value: Decimal = Field(description="The value to return.")
    token: str = Field(description="Name of the secret the fake API would be called with.")
    mode: Mode = Field("ok", description="How the fetch behaves.")


class MemorySource(BaseSource[MemorySourceConfig]):
    """Returns a value held in memory; fails as the config asks, by the contract."""

    type_name = "memory"
    config_model = MemorySourceConfig

    def fetch(self, config: MemorySourceConfig, ctx: SourceContext) -> Decimal | None:
        """Return the configured value, or raise the configured failure.

        Args:
            config: Value and mode.
            ctx: The KR reference is named in errors.

        Returns:
            The value.

        Raises:
            RetriableSourceError: Modes timeout, rate_limited, server_error.
            FatalSourceError: Modes unauthorized, bad_shape.
        """
        where = f"KR {ctx.kr_ref}: memory source"
        if config.mode in ("timeout", "rate_limited", "server_error"):
            raise RetriableSourceError(f"{where}: {config.mode}")
        if config.mode in ("unauthorized", "bad_shape"):
            raise FatalSourceError(f"{where}: {config.mode}")
        return config.value


class BrokenSourceConfig(MemorySourceConfig):
    """The memory config under another type name."""

    type: Literal["broken"] = Field(description="Source type: a broken connector.")  # type: ignore[assignment]


class BrokenSource(BaseSource[BrokenSourceConfig]):
    """Breaks the contract: a float result, a leaked secret, a plain Exception on 429."""

    type_name = "broken"
    config_model = BrokenSourceConfig

    def fetch(self, config: BrokenSourceConfig, ctx: SourceContext) -> Decimal | None:
        """Misbehave.

        Args:
            config: Value and mode.
            ctx: The KR reference.

        Returns:
            A float, which the contract refuses.

        Raises:
            Exception: On 429, instead of RetriableSourceError.
            RetriableSourceError: On a server error, quoting the secret.
            FatalSourceError: Modes unauthorized, bad_shape (correct).
        """
        where = f"KR {ctx.kr_ref}: broken source"
        secret = self.env.secrets[config.token].get_secret_value()
        if config.mode == "rate_limited":
            raise Exception(f"{where}: HTTP 429")  # the defect under test
        if config.mode == "server_error":
            raise RetriableSourceError(f"{where}: HTTP 503 for token {secret}")
        if config.mode == "timeout":
            raise RetriableSourceError(f"{where}: timeout")
        if config.mode in ("unauthorized", "bad_shape"):
            raise FatalSourceError(f"{where}: {config.mode}")
        return float(config.value)  # type: ignore[return-value]
