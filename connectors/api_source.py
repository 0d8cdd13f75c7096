"""The base of the vendor API connectors: one JSON call, one number, the product's guarantees.

A vendor connector (Plausible, PostHog, GA4, Jira, ...) says only what is particular to its
service: its config model (a subclass of :class:`ApiSourceConfig`), the call to make
(:meth:`ApiSource.build_call`) and where the number sits in the answer
(:meth:`ApiSource.read_value`). Everything else is here and the same for all: the base URL
(the service's own, or a connection's for a self-hosted instance, a region or a proxy),
secrets looked up by name and redacted from every message, one deadline per attempt, the
size cap, the retry policy, and errors that name the KR and the call.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field

from okr_pipeline.connectors.api_client import (
    MAX_RESPONSE_BYTES_LIMIT,
    ApiCall,
    ClientSource,
)
from okr_pipeline.connectors.base import (
    BaseSourceConfig,
    SourceContext,
)
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.values import NotANumberError, to_decimal
from okr_pipeline.okr_core.names import unknown_name_message
from okr_pipeline.okr_core.redaction import Redactor, is_sensitive_header, truncate
from okr_pipeline.okr_core.words import plural

__all__ = [
    "ApiCall",
    "ApiSource",
    "ApiSourceConfig",
    "Period",
    "Reduce",
    "ShapeError",
    "describe_call",
    "dig",
    "number",
    "period_bounds",
    "period_days",
    "reduce_points",
]

#: The window of time a KR's number covers, ending at its as-of: the cycle so far, or the
#: last day, week, 28 or 30 or 90 days.
Period = Literal["cycle", "1d", "7d", "28d", "30d", "90d"]
_PERIOD_DAYS = {"1d": 1, "7d": 7, "28d": 28, "30d": 30, "90d": 90}
#: How a time series' points become the KR's one number.
Reduce = Literal["last", "avg", "max", "min", "sum"]


class ApiSourceConfig(BaseSourceConfig):
    """What every vendor API source has: where to call, how long and how often to try."""

    connection: str | None = Field(
        None,
        min_length=1,
        description="Connection in the settings whose url replaces the service's base URL "
        "(self-hosted, another region, a proxy) and whose headers are sent too.",
    )
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        le=600,
        description="Time allowed for one attempt as a whole (default: the connection's "
        "timeout, or 30).",
    )
    retries: int = Field(3, ge=0, le=10, description="Retries after a transient failure.")
    backoff_seconds: float = Field(
        0.5,
        ge=0,
        le=60,
        description="First retry wait; doubles per retry (jittered, at most 30s), or the "
        "server's Retry-After.",
    )
    max_response_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        le=MAX_RESPONSE_BYTES_LIMIT,
        description="Largest answer accepted, in bytes (default 10 MiB).",
    )

    def connection_names(self) -> set[str]:
        """The connection that replaces the base URL, if any.

        Returns:
            ``{connection}`` or an empty set.
        """
        return {self.connection} if self.connection else set()

    def uses_as_of(self) -> bool:
        """Vendor APIs are asked for a window ending at the as-of, so they can backfill.

        Returns:
            True; a connector whose API only knows the present overrides it.
        """
        return True

    def concurrency_key(self) -> str:
        """Calls to one connection (or else to the service) share a bound.

        Returns:
            ``"<type>:<connection>"`` or ``"<type>"``.
        """
        kind = str(getattr(self, "type", "api"))
        return f"{kind}:{self.connection}" if self.connection else kind


ApiConfigT = TypeVar("ApiConfigT", bound=ApiSourceConfig)


class ShapeError(Exception):
    """The answer does not have the documented shape; the message says what was found."""


class ApiSource(ClientSource[ApiConfigT]):
    """A vendor API connector: :meth:`build_call` and :meth:`read_value` are all it writes.

    Args:
        env: Connections and secrets of this run.
        sleep: Called to wait between retries; injectable so tests need not wait.
        random: Numbers in [0, 1) for the retry jitter; injectable so tests can fix them.
    """

    #: The service's own base URL, used when the config names no connection.
    default_base_url: ClassVar[str]

    @abstractmethod
    def build_call(
        self, config: ApiConfigT, ctx: SourceContext, base_url: str, secrets: Mapping[str, str]
    ) -> ApiCall:
        """The request that answers with the KR's number.

        Args:
            config: The validated config.
            ctx: The as-of and the cycle (for the API's date range).
            base_url: The service's base URL, without a trailing slash.
            secrets: The values of the secrets the config names (never shown).

        Returns:
            The call; its timeout, retries and size cap are filled in from the config.
        """

    @abstractmethod
    def read_value(self, config: ApiConfigT, ctx: SourceContext, answer: Any) -> Any:
        """Where the number sits in the parsed answer (numbers parsed as ``Decimal``).

        Returns:
            The number (``Decimal``, ``int`` or a numeric string), or None for no data.

        Raises:
            ShapeError: The answer is not shaped as documented (the caller adds the KR).
        """

    def fetch(self, config: ApiConfigT, ctx: SourceContext) -> Decimal | None:
        """Call the service (with retries) and return the KR's number.

        Raises:
            RetriableSourceError: Connection error, timeout, 429 or 5xx after all retries.
            FatalSourceError: Unknown connection or secret, other 4xx (401: the credentials),
                an answer that is not JSON, not shaped as documented, or not a number.
        """
        call, redact, where = self._call(config, ctx)
        answer = self._client.send_json(call, where=where, redact=redact)
        try:
            value = self.read_value(config, ctx, answer)
        except ShapeError as exc:
            raise FatalSourceError(f"{where}: {truncate(redact(str(exc)), 400)}") from exc
        try:
            return to_decimal(value)
        except NotANumberError as exc:
            raise FatalSourceError(f"{where}: {truncate(redact(str(exc)), 400)}") from exc

    def describe(self, config: ApiConfigT, ctx: SourceContext) -> str:
        """The request a fetch sends: method, URL, parameters and body, secrets redacted.

        Args:
            config: The validated config.
            ctx: The as-of and the cycle.

        Returns:
            The request, as :func:`describe_call` shows it.

        Raises:
            FatalSourceError: An unknown connection or secret.
        """
        call, redact, _ = self._call(config, ctx)
        return describe_call(call, redact)

    def _call(self, config: ApiConfigT, ctx: SourceContext) -> tuple[ApiCall, Redactor, str]:
        """The complete call, the redactor of its secrets, and the words naming it."""
        where = f"KR {ctx.kr_ref}: {self.type_name} source"
        base_url, headers, known = self._base(config, where)
        secrets = self._secrets(config, where)
        call = self.build_call(config, ctx, base_url, secrets)
        # Credentials made from the secrets (an access token, a Basic pair) are hidden too.
        made = [value for name, value in call.headers.items() if is_sensitive_header(name)]
        redact = Redactor([*known, *secrets.values(), *made])
        timeout = config.timeout_seconds or self._connection_timeout(config)
        call = ApiCall(
            method=call.method,
            url=call.url,
            params=call.params,
            headers={**headers, **call.headers},
            json_body=call.json_body,
            timeout=timeout,
            max_bytes=config.max_response_bytes,
            retries=config.retries,
            backoff_seconds=config.backoff_seconds,
            retry_answer=call.retry_answer,
        )
        return call, redact, f"{where} {call.method} {redact(call.url.split('?', 1)[0])}"

    def _base(self, config: ApiConfigT, where: str) -> tuple[str, dict[str, str], list[str]]:
        """The base URL, the connection's headers, and the values they hold to redact."""
        if config.connection is None:
            return self.default_base_url.rstrip("/"), {}, []
        connection = self.env.connections.get(config.connection)
        if connection is None:
            raise FatalSourceError(
                f"{where}: "
                + unknown_name_message("connection", config.connection, self.env.connections)
            )
        url = connection.url.get_secret_value()
        headers = {name: value.get_secret_value() for name, value in connection.headers.items()}
        return url.rstrip("/"), headers, [urlsplit(url).password or "", *headers.values()]

    def _connection_timeout(self, config: ApiConfigT) -> float:
        if config.connection is not None and config.connection in self.env.connections:
            return self.env.connections[config.connection].timeout_seconds
        return 30.0

    def _secrets(self, config: ApiConfigT, where: str) -> dict[str, str]:
        names = sorted(config.secret_names())
        missing = [name for name in names if name not in self.env.secrets]
        if missing:
            raise FatalSourceError(
                f"{where}: " + unknown_name_message("secret", missing[0], self.env.secrets)
            )
        return {name: self.env.secrets[name].get_secret_value() for name in names}


def describe_call(call: ApiCall, redact: Callable[[str], str]) -> str:
    """A call as ``okr source test`` shows it, every secret it carries redacted.

    Header values are not shown (they are where credentials go), only their names.

    Args:
        call: The call.
        redact: Removes the secrets of the call from text.

    Returns:
        ``METHOD URL`` then lines for the parameters, headers and body it has.
    """
    lines = [f"{call.method} {redact(call.url)}"]
    if call.params:
        shown = ", ".join(f"{key}={redact(str(value))}" for key, value in call.params.items())
        lines.append(f"parameters: {shown}")
    if call.headers:
        lines.append(f"headers: {', '.join(sorted(call.headers))} (values not shown)")
    if call.json_body is not None:
        body = json.dumps(call.json_body, default=str, sort_keys=True)
        lines.append(f"body: {truncate(redact(body), 2000)}")
    return "\n".join(lines)


def period_bounds(period: Period, ctx: SourceContext) -> tuple[datetime, datetime]:
    """The window a KR's number covers: from its start to the as-of (both UTC).

    Args:
        period: ``cycle`` (the cycle's start to the as-of) or a number of days back.
        ctx: The as-of and the cycle.

    Returns:
        ``(start, end)``; ``end`` is the as-of.
    """
    end = ctx.as_of.astimezone(UTC)
    if period == "cycle":
        return min(ctx.cycle_start.astimezone(UTC), end), end
    return end - timedelta(days=_PERIOD_DAYS[period]), end


def period_days(period: Period, ctx: SourceContext) -> tuple[date, date]:
    """The calendar days (UTC, both included) of a day-granular API for a KR's period.

    The last day is the one holding the last instant before the as-of, so an as-of at
    midnight ends with the day before it (a day that had not begun is never asked for).
    ``Nd`` is the N days ending there; ``cycle`` starts on the cycle's first day.

    Args:
        period: The KR's window.
        ctx: The as-of and the cycle.

    Returns:
        ``(first, last)``; ``first <= last``.
    """
    start, end = period_bounds(period, ctx)
    last = (end - timedelta(microseconds=1)).date() if end > start else end.date()
    if period == "cycle":
        return min(start.date(), last), last
    days = round((end - start) / timedelta(days=1))
    return last - timedelta(days=days - 1), last


def dig(answer: Any, *path: str | int) -> Any:
    """The value at ``path`` in a parsed JSON answer, or a :class:`ShapeError` saying where.

    Args:
        answer: The parsed answer.
        *path: Keys (objects) and indexes (lists), outermost first.

    Returns:
        The value found there (None when the answer holds ``null`` there).

    Raises:
        ShapeError: A key is missing (the keys that exist are listed), an index is past the
            end, or a step meets the wrong kind of value.
    """
    here: Any = answer
    walked: list[str] = []
    for step in path:
        place = "the answer" if not walked else "".join(walked)
        if isinstance(step, int):
            if not isinstance(here, list):
                raise ShapeError(f"{place} is {_kind(here)}, not a list")
            if not -len(here) <= step < len(here):
                raise ShapeError(f"{place} has {plural(len(here), 'item')}, no [{step}]")
            walked.append(f"[{step}]")
        else:
            if not isinstance(here, dict):
                raise ShapeError(f"{place} is {_kind(here)}, not an object with {step!r}")
            if step not in here:
                keys = ", ".join(sorted(map(str, here))[:20]) or "none"
                raise ShapeError(f"{place} has no {step!r} (keys: {keys})")
            walked.append(f".{step}" if walked else step)
        here = here[step]
    return here


def number(values: Sequence[Any], what: str) -> Any:
    """The one value of a list the API returns (several, or none, are told apart).

    Args:
        values: What the answer holds.
        what: What the values are, for the message (e.g. "series").

    Returns:
        The single value, or None when the list is empty (no data).

    Raises:
        ShapeError: More than one value.
    """
    if not values:
        return None
    if len(values) > 1:
        raise ShapeError(f"{len(values)} {what} in the answer, expected one; narrow the query")
    return values[0]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def reduce_points(how: Reduce, values: Sequence[Decimal]) -> Decimal | None:
    """One number from a time series' points, oldest first.

    Args:
        how: ``last``, ``avg``, ``max``, ``min`` or ``sum``.
        values: The points' values, in time order.

    Returns:
        The reduced value, or None (no data) when there are no points.
    """
    if not values:
        return None
    if how == "last":
        return values[-1]
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    total = sum(values, Decimal(0))
    return total if how == "sum" else total / len(values)
