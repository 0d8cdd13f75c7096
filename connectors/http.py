"""HTTP metric source: one JSON API call, one value picked out with JSONPath.

Works with any JSON API (Prometheus, GA4, internal services): the URL, parameters,
headers and body may use ``${secret:NAME}`` and time placeholders (see
``connectors.templating``), and ``value_path`` picks the number out of the response.
Transient failures (connection errors, timeouts, 429, 5xx) are retried with exponential
backoff, honouring ``Retry-After``; every message is redacted.

Time: ``timeout_seconds`` bounds one attempt as a whole (connect, headers and the entire
body; see ``connectors.http_deadline``), so a server trickling its answer cannot hold a
worker. The whole fetch takes at most ``(retries + 1) * timeout_seconds`` plus the waits
between attempts (each at most ``MAX_BACKOFF_SECONDS``). Size: a success answer larger than
``max_response_bytes`` is refused. What a path that matches nothing means (no data, or a
wrong path) is defined in ``connectors.http_extract``.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests
from okr_pipeline.connectors.auth import AuthConfig, apply_auth
from okr_pipeline.connectors.base import (
    BaseSource,
    BaseSourceConfig,
    SourceContext,
    SourceEnvironment,
)
from okr_pipeline.connectors.errors import (
    FatalSourceError,
    RetriableSourceError,
    error_class_for_status,
)
from okr_pipeline.connectors.http_deadline import (
    Answer,
    DeadlineAdapter,
    DeadlineExceeded,
    ResponseTooLarge,
    request_within,
)
from okr_pipeline.connectors.http_extract import (
    AnswerError,
    NotJson,
    compile_jsonpath,
    extract_value,
)
from okr_pipeline.connectors.templating import (
    placeholder_errors,
    render,
    render_structure,
    secret_refs,
)
from okr_pipeline.okr_core.names import unknown_name_message
from okr_pipeline.okr_core.redaction import Redactor, truncate
from pydantic import Field, field_validator, model_validator

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_BACKOFF_SECONDS",
    "MAX_RESPONSE_BYTES_LIMIT",
    "HttpSource",
    "HttpSourceConfig",
    "retry_after_seconds",
]

MAX_BACKOFF_SECONDS = 30.0
USER_AGENT = "okr-pipeline"
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_RESPONSE_BYTES_LIMIT = 256 * 1024 * 1024
# An error answer is only quoted (200 characters), so only its start is read.
ERROR_BODY_BYTES = 64 * 1024

ParamValue = str | int | float | bool


class HttpSourceConfig(BaseSourceConfig):
    """A JSON HTTP API call returning the KR's current value."""

    type: Literal["http"] = Field(description="Source type: a JSON HTTP API.")
    url: str | None = Field(
        None, description="Absolute http(s) URL. Either url, or connection (+ path)."
    )
    connection: str | None = Field(
        None,
        min_length=1,
        description="Connection in the settings whose url is the base URL and whose "
        "headers are sent with the request.",
    )
    path: str = Field("", description="Path appended to the connection's base URL.")
    method: Literal["GET", "POST"] = Field("GET", description="HTTP method.")
    params: dict[str, ParamValue] = Field(default_factory=dict, description="Query parameters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    json_body: Any = Field(None, alias="json", description="JSON request body (POST).")
    value_path: str = Field(
        min_length=1, description="JSONPath of the value in the response, e.g. $.data.total."
    )
    auth: AuthConfig | None = Field(None, description="Authentication scheme.")
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        le=600,
        description="Time allowed for one attempt as a whole: connect, headers and the "
        "entire body (default: the connection's timeout, or 30). The whole fetch takes at "
        "most (retries + 1) times this, plus the waits between attempts.",
    )
    max_response_bytes: int = Field(
        DEFAULT_MAX_RESPONSE_BYTES,
        ge=1024,
        le=MAX_RESPONSE_BYTES_LIMIT,
        description="Largest response body accepted, in bytes (default 10485760 = 10 MiB, "
        "at most 268435456 = 256 MiB); a larger answer is the KR's error.",
    )
    retries: int = Field(3, ge=0, le=10, description="Retries after a transient failure.")
    backoff_seconds: float = Field(
        0.5, ge=0, le=60, description="First retry delay; doubles per retry, at most 30s."
    )

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError(
                    "must be an absolute http(s) URL such as https://api.example.com/v1/x; "
                    "for a path on a connection use 'connection' and 'path'"
                )
            try:
                parts.port  # noqa: B018 - urlsplit checks the port only when asked
            except ValueError:
                raise ValueError(
                    "has a host part that is not host[:port]; in a user name or password, "
                    "write '/', '@', ':' and '?' percent-encoded (%2F, %40, %3A, %3F)"
                ) from None
        return url

    @field_validator("value_path")
    @classmethod
    def _valid_jsonpath(cls, path: str) -> str:
        compile_jsonpath(path)  # raises ValueError with the parser's message
        return path

    @model_validator(mode="after")
    def _consistent(self) -> HttpSourceConfig:
        if (self.url is None) == (self.connection is None):
            raise ValueError("set exactly one of 'url' or 'connection' (with 'path')")
        if self.url is not None and self.path:
            raise ValueError("'path' goes with 'connection'; put it in 'url' instead")
        if self.method == "GET" and self.json_body is not None:
            raise ValueError("a 'json' body needs method: POST")
        problems = [p for text in self._templates() for p in placeholder_errors(text)]
        if problems:
            raise ValueError("; ".join(sorted(set(problems))))
        return self

    def _templates(self) -> list[str]:
        texts = [self.url or "", self.path, *self.headers.keys(), *self.headers.values()]
        texts += [v for v in self.params.values() if isinstance(v, str)]
        texts += sorted(_strings_in(self.json_body))
        return texts

    def uses_as_of(self) -> bool:
        """True when a template of the request names ``${as_of...}``.

        Returns:
            Whether the request depends on the as-of.
        """
        return any("${as_of" in text for text in self._templates())

    def connection_names(self) -> set[str]:
        """The connection used as base URL, if any.

        Returns:
            ``{connection}`` or an empty set.
        """
        return {self.connection} if self.connection else set()

    def secret_names(self) -> set[str]:
        """Secrets named by ``auth`` and by ``${secret:NAME}`` placeholders.

        Returns:
            The secret names.
        """
        names = secret_refs([self.url or "", self.path, self.headers, self.params, self.json_body])
        if self.auth is not None:
            names |= self.auth.secret_names()
        return names

    def concurrency_key(self) -> str:
        """Requests to one connection, or else one host, share a bound.

        Returns:
            ``"http:<connection>"`` or ``"http:<host[:port]>"``.
        """
        if self.connection:
            return f"http:{self.connection}"
        parts = urlsplit(self.url or "")
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:  # refused by validation; a stored config may predate that
            port = None
        return f"http:{host}:{port}" if port else f"http:{host}"


def _strings_in(value: Any) -> set[str]:
    # Every string inside a nested JSON-like body, keys included, for validation.
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {s for k, v in value.items() for s in ({str(k)} | _strings_in(v))}
    if isinstance(value, list):
        return {s for v in value for s in _strings_in(v)}
    return set()


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delay in seconds, or an HTTP date.

    Args:
        value: The header value, if any.
        now: Current time for HTTP dates (default: now, UTC).

    Returns:
        Seconds to wait (>= 0), or None when absent or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpSource(BaseSource[HttpSourceConfig]):
    """Calls a JSON HTTP API and picks one number out of the response with JSONPath.

    Args:
        env: Connections and secrets of this run.
        sleep: Called to wait between retries; injectable so tests need not wait.
    """

    type_name = "http"
    config_model = HttpSourceConfig

    def __init__(
        self, env: SourceEnvironment, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(env)
        self._sleep = sleep
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def fetch(self, config: HttpSourceConfig, ctx: SourceContext) -> Decimal | None:
        """Call the API (with retries) and return the value at ``value_path``.

        Args:
            config: The validated HTTP source config.
            ctx: As-of time and cycle bounds (for placeholders) and the KR reference.

        Returns:
            The value as an exact Decimal; None (no data) when the answer holds null, NaN
            or an empty list where the path exists (``connectors.http_extract``).

        Raises:
            RetriableSourceError: Connection error, no complete answer within the timeout,
                429 or 5xx, after all retries. The fetch takes at most ``retries + 1``
                times the timeout, plus the waits between attempts.
            FatalSourceError: Other 4xx, an answer over ``max_response_bytes``, invalid
                JSON, a path that does not exist in the answer, several matches, not a
                number or out of range.
        """
        where = f"KR {ctx.kr_ref}: http source"
        connection = None
        if config.connection is not None:
            connection = self.env.connections.get(config.connection)
            if connection is None:
                raise FatalSourceError(
                    f"{where}: "
                    + unknown_name_message("connection", config.connection, self.env.connections)
                )
        missing = sorted(config.secret_names() - set(self.env.secrets))
        if missing:
            raise FatalSourceError(
                f"{where}: " + unknown_name_message("secret", missing[0], self.env.secrets)
            )
        secrets = {name: value.get_secret_value() for name, value in self.env.secrets.items()}
        # Every secret of the run is redacted, not only the ones this source uses: a
        # response may echo anything.
        known_secrets = list(secrets.values())
        headers: dict[str, str] = {}
        if connection is not None:
            base = connection.url.get_secret_value()
            known_secrets.append(urlsplit(base).password or "")
            for name, value in connection.headers.items():
                headers[name] = value.get_secret_value()
                known_secrets.append(headers[name])
            path = render(config.path, ctx, secrets, _quote)
            url = base.rstrip("/") + "/" + path.lstrip("/") if path else base
        else:
            url = render(config.url or "", ctx, secrets, _quote)
        for name, template in config.headers.items():
            headers[render(name, ctx, secrets)] = render(template, ctx, secrets)
        params = {k: _param(v, ctx, secrets) for k, v in config.params.items()}
        known_secrets += apply_auth(config.auth, secrets, headers, params)
        redact = Redactor(known_secrets)
        body = render_structure(config.json_body, ctx, secrets)
        timeout = config.timeout_seconds or (connection.timeout_seconds if connection else 30.0)
        shown = f"{config.method} {redact(_without_query(url))}"
        where = f"{where} {shown}"
        answer = self._send(config, url, params, headers, body, timeout, where, redact)
        return _extract(answer, config.value_path, where, redact)

    def _send(
        self,
        config: HttpSourceConfig,
        url: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: Any,
        timeout: float,
        where: str,
        redact: Redactor,
    ) -> Answer:
        attempts = config.retries + 1
        for attempt in range(1, attempts + 1):
            cause: Exception | None = None
            status: int | None = None
            delay = min(config.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            try:
                # Redirects are not followed: they could carry an API-key header to another
                # host; the user should configure the final URL instead.
                response = request_within(
                    self._session(),
                    config.method,
                    url,
                    params=params,
                    headers=headers,
                    json_body=body,
                    seconds=timeout,
                    max_bytes=config.max_response_bytes,
                    error_bytes=ERROR_BODY_BYTES,
                )
            except (DeadlineExceeded, requests.Timeout) as exc:
                cause, reason = exc, f"no complete answer within {timeout:g}s"
            except ResponseTooLarge as exc:
                raise FatalSourceError(f"{where}: {_too_large(exc)}") from exc
            except requests.exceptions.SSLError as exc:
                raise FatalSourceError(f"{where}: TLS error: {redact(str(exc))}") from exc
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                broke = isinstance(exc, requests.exceptions.ChunkedEncodingError)
                what = "the answer broke off" if broke else "cannot connect"
                cause, reason = exc, f"{what}: {truncate(redact(str(exc)))}"
            except requests.RequestException as exc:
                raise FatalSourceError(
                    f"{where}: request failed: {truncate(redact(str(exc)))}"
                ) from exc
            else:
                if response.status < 300:
                    return response
                status = response.status
                reason = _status_reason(response, redact)
                if error_class_for_status(status) is FatalSourceError:
                    raise FatalSourceError(f"{where}: {reason}", status=status)
                waited = retry_after_seconds(response.headers.get("Retry-After"))
                if waited is not None:
                    if waited > MAX_BACKOFF_SECONDS:
                        # Holding a worker for minutes helps nobody; the next run retries.
                        raise RetriableSourceError(
                            f"{where}: {reason}; the server asks to retry after "
                            f"{waited:g}s (more than {MAX_BACKOFF_SECONDS:g}s), giving up",
                            status=status,
                        )
                    delay = waited
            if attempt < attempts:
                self._sleep(delay)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        raise RetriableSourceError(f"{where}: {reason}{tries}", status=status) from cause

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            # requests.Session is not documented as thread-safe: one per thread.
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            for prefix in ("http://", "https://"):
                session.mount(prefix, DeadlineAdapter())
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every per-thread HTTP session."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"HttpSource(sessions={len(self._sessions)}, env={self.env!r})"


def _quote(value: str) -> str:
    return quote(value, safe="")


def _param(value: ParamValue, ctx: SourceContext, secrets: dict[str, str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return render(value, ctx, secrets)
    return str(value)


def _without_query(url: str) -> str:
    # Query strings often carry keys; the path is enough to tell which call failed.
    return url.split("?", 1)[0]


def _status_reason(answer: Answer, redact: Redactor) -> str:
    text = answer.content.decode(answer.encoding or "utf-8", errors="replace")
    reason = f"HTTP {answer.status} {answer.reason}".rstrip()
    if 300 <= answer.status < 400:
        location = redact(answer.headers.get("Location", "?"))
        return f"{reason}: redirected to {location}; use that URL (redirects are not followed)"
    return f"{reason}: {truncate(redact(text), 200)}" if text.strip() else reason


def _too_large(exc: ResponseTooLarge) -> str:
    size = (
        f"declares {exc.declared} bytes (Content-Length)"
        if exc.declared is not None
        else f"is larger than {exc.limit} bytes"
    )
    return (
        f"the response {size}, more than max_response_bytes ({exc.limit}); ask the API for "
        f"less, or raise max_response_bytes on this source (at most "
        f"{MAX_RESPONSE_BYTES_LIMIT})"
    )


def _extract(answer: Answer, value_path: str, where: str, redact: Redactor) -> Decimal | None:
    try:
        return extract_value(answer.content, value_path)
    except NotJson as exc:
        text = answer.content.decode(answer.encoding or "utf-8", errors="replace")
        raise FatalSourceError(
            f"{where}: the response is not JSON ({exc}): {truncate(redact(text), 200)!r}"
        ) from exc
    except AnswerError as exc:
        # Keys and values come from the answer, which may echo anything: redacted.
        raise FatalSourceError(f"{where}: {truncate(redact(str(exc)), 400)}") from exc
