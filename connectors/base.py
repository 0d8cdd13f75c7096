"""The interface every metric source implements.

A source is one small class: given its validated config and the evaluation context it
returns a ``Decimal`` (or ``None`` for "the source answered but had no value") or raises a
``SourceError``. One instance per source type is created per run and shared by many
threads, so sources keep their expensive state (engines, HTTP sessions) thread-safe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr

from okr_pipeline.okr_core.redaction import redact_value
from okr_pipeline.okr_core.settings import ConnectionSettings

__all__ = [
    "BaseSource",
    "BaseSourceConfig",
    "ConfigT",
    "SourceContext",
    "SourceEnvironment",
]


@dataclass(frozen=True)
class SourceContext:
    """What one fetch is evaluated against.

    Attributes:
        as_of: The moment the value is for; timezone-aware, UTC.
        cycle_start: Start of the KR's cycle; timezone-aware, UTC.
        cycle_end: End of the KR's cycle (exclusive); timezone-aware, UTC.
        kr_ref: ``"objective/kr"``, used to name the KR in error messages.
    """

    as_of: datetime
    cycle_start: datetime
    cycle_end: datetime
    kr_ref: str

    def __post_init__(self) -> None:
        # Naive datetimes would be bound to queries in the server's local time: refuse
        # them here rather than return a value for the wrong day.
        for name in ("as_of", "cycle_start", "cycle_end"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"SourceContext.{name} must be timezone-aware, got {value!r}")


@dataclass(frozen=True)
class SourceEnvironment:
    """What all fetches of a run share: named connections and secrets from the settings.

    Attributes:
        connections: Connection settings by name (``OKR_CONNECTIONS__<NAME>__URL``...).
        secrets: Secret values by name (``OKR_SECRETS__<NAME>``).
    """

    connections: Mapping[str, ConnectionSettings] = field(default_factory=dict)
    secrets: Mapping[str, SecretStr] = field(default_factory=dict)

    def __repr__(self) -> str:
        # The dataclass repr would be safe (SecretStr masks itself) but long; names suffice.
        return (
            f"SourceEnvironment(connections={sorted(self.connections)}, "
            f"secrets={sorted(self.secrets)})"
        )


class BaseSourceConfig(BaseModel):
    """Base of every source config model; subclasses narrow ``type`` to a ``Literal``.

    Configs are immutable and reject unknown keys, so a typo in an OKR file is an error
    rather than a silently ignored setting. Their ``repr``/``str`` mask anything that looks
    like a credential, in case a user pasted one into a header or URL.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str

    def connection_names(self) -> set[str]:
        """Names of the connections (from the settings) this source uses.

        Returns:
            A set of connection names; empty by default.
        """
        return set()

    def secret_names(self) -> set[str]:
        """Names of the secrets (from the settings) this source uses.

        Returns:
            A set of secret names; empty by default.
        """
        return set()

    def uses_as_of(self) -> bool:
        """True when the source answers for the as-of it is given (it can be backfilled).

        A source that only knows the current value (no ``:as_of`` / ``${as_of}`` in its
        query or request) gives today's number whatever the as-of; ``okr backfill`` skips it.

        Returns:
            False by default.
        """
        return False

    def concurrency_key(self) -> str:
        """Key of the concurrency bound this source counts against.

        Sources with the same key share one limit (the connection's ``max_concurrency``),
        so one slow database or API is not hammered by every KR at once.

        Returns:
            ``"<type>:<connection or host>"``; the bare type by default.
        """
        return self.type

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_value(value, name)


ConfigT = TypeVar("ConfigT", bound=BaseSourceConfig)


class BaseSource(ABC, Generic[ConfigT]):
    """A metric source type: turns a config and a context into a number.

    Subclasses set ``type_name`` and ``config_model`` and implement ``fetch``. They are
    registered under the entry-point group ``okr.connectors``.

    Args:
        env: Connections and secrets of this run.
    """

    type_name: ClassVar[str]
    config_model: ClassVar[type[BaseSourceConfig]]
    max_batch: ClassVar[int] = 1  # KRs handed to one fetch_many call at most
    # What `okr connectors` and the README's table say of the connector.
    reads: ClassVar[str] = ""  # what the number is, e.g. "a PromQL query at the as-of"
    authentication: ClassVar[str] = ""  # how it signs in, e.g. "bearer token (secret)"
    tested_against: ClassVar[str] = ""  # "live service", "real server" or "documented shapes"

    def __init__(self, env: SourceEnvironment) -> None:
        self.env = env

    @abstractmethod
    def fetch(self, config: ConfigT, ctx: SourceContext) -> Decimal | None:
        """Fetch the current value of one KR.

        Must be thread-safe: many threads call it at once on one instance.

        Args:
            config: The validated source config of the KR.
            ctx: As-of time, cycle bounds and the KR reference for messages.

        Returns:
            The value, exactly, as a ``Decimal``; ``None`` when the source answered but has
            no value (status ``no_data``; never shown as 0).

        Raises:
            RetriableSourceError: The fetch may succeed later (timeout, connection, 5xx).
            FatalSourceError: Retrying will not help (bad query, auth, result shape).
        """

    def fetch_many(
        self, items: Sequence[tuple[ConfigT, SourceContext]]
    ) -> list[Decimal | Exception | None]:
        """Fetch several KRs' values, in order; a failure is returned, not raised.

        The runner hands a source up to ``max_batch`` KRs that share a concurrency key
        (the same connection). The default fetches them one by one; a source that can
        share work between them (one database connection and transaction for many
        queries) overrides it.

        Args:
            items: ``(config, context)`` pairs.

        Returns:
            One entry per item: the value, None for no data, or the exception it raised.
        """
        results: list[Decimal | Exception | None] = []
        for config, ctx in items:
            try:
                results.append(self.fetch(config, ctx))
            except Exception as exc:  # noqa: BLE001 - returned, so one KR never stops others
                results.append(exc)
        return results

    def describe(self, config: ConfigT, ctx: SourceContext) -> str:
        """What a fetch of ``config`` sends, for ``okr source test``; secrets redacted.

        Sends nothing. The default shows the config (its ``repr`` masks credentials);
        connectors override it to show their query or request.

        Args:
            config: The validated source config of the KR.
            ctx: As-of time, cycle bounds and the KR reference.

        Returns:
            One or more lines of text.
        """
        return f"{self.type_name} source: {config!r}"

    def release_session(self, key: str) -> None:
        """Close one session of ``key`` left idle in a pool, if there is one.

        Called when a lane (a thread fetching that key's batches in turn, one session at
        a time) ends, before its slot of the connection's limit is given back, so a run
        never keeps more sessions open than the slots it holds. The default does nothing.

        Args:
            key: The concurrency key (``sql:warehouse``).
        """

    def close(self) -> None:
        """Release engines, sessions and other resources. Safe to call more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(type={self.type_name!r}, env={self.env!r})"
