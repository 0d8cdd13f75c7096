"""HTTP metric source: one JSON API call, one value picked out with JSONPath.

Works with any JSON API (Prometheus, GA4, internal services): the URL, parameters,
headers and body may use ``${secret:NAME}`` and time placeholders (see
``connectors.templating``), and ``value_path`` picks the number out of the response.
Transient failures (connection errors, timeouts, 429, 5xx) are retried under the one retry
policy (``okr_core.retry``: jittered exponential backoff, ``Retry-After`` honoured); every
message is redacted. The config model is in ``connectors.http_config``.

Time: ``timeout_seconds`` bounds one attempt as a whole (connect, headers and the entire
body; see ``connectors.http_deadline``), so a server trickling its answer cannot hold a
worker. The whole fetch takes at most ``(retries + 1) * timeout_seconds`` plus the waits
between attempts (each at most ``MAX_BACKOFF_SECONDS``). Size: a success answer larger than
``max_response_bytes`` is refused. What a path that matches nothing means (no data, or a
wrong path) is defined in ``connectors.http_extract``.
"""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from okr_pipeline.connectors.auth import apply_auth
from okr_pipeline.connectors.base import BaseSource, SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import (
    FatalSourceError,
    RetriableSourceError,
    error_class_for_status,
)
from okr_pipeline.connectors.http_config import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_RESPONSE_BYTES_LIMIT,
    HttpSourceConfig,
    ParamValue,
)
from okr_pipeline.connectors.http_deadline import (
    Answer,
    DeadlineAdapter,
    DeadlineExceeded,
    ResponseTooLarge,
    request_within,
)
from okr_pipeline.connectors.http_extract import AnswerError, NotJson, extract_value
from okr_pipeline.connectors.templating import render, render_structure
from okr_pipeline.okr_core.names import unknown_name_message
from okr_pipeline.okr_core.redaction import Redactor, truncate
from okr_pipeline.okr_core.retry import (
    MAX_DELAY_SECONDS,
    RetryAfterTooLong,
    RetryPolicy,
    retry_after_seconds,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_BACKOFF_SECONDS",
    "MAX_RESPONSE_BYTES_LIMIT",
    "HttpSource",
    "HttpSourceConfig",
]

MAX_BACKOFF_SECONDS = MAX_DELAY_SECONDS
USER_AGENT = "okr-pipeline"
# An error answer is only quoted (200 characters), so only its start is read.
ERROR_BODY_BYTES = 64 * 1024


class _Transient(Exception):
    """One attempt failed in a way the next one may not; ``__cause__`` is the transport's."""

    def __init__(
        self, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class HttpSource(BaseSource[HttpSourceConfig]):
    """Calls a JSON HTTP API and picks one number out of the response with JSONPath.

    Args:
        env: Connections and secrets of this run.
        sleep: Called to wait between retries; injectable so tests need not wait.
        random: Numbers in [0, 1) for the retry jitter; injectable so tests can fix them.
    """

    type_name = "http"
    config_model = HttpSourceConfig

    def __init__(
        self,
        env: SourceEnvironment,
        *,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        super().__init__(env)
        self._sleep = sleep
        self._random = random
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
        attempt = partial(self._attempt, config, url, params, headers, body, timeout, where, redact)
        answer = self._send(config, attempt, where)
        return _extract(answer, config.value_path, where, redact)

    def _send(self, config: HttpSourceConfig, attempt: Callable[[], Answer], where: str) -> Answer:
        """Make the attempts the retry policy allows; the answer, or the last failure."""
        policy = RetryPolicy(
            attempts=config.retries + 1, first_delay=config.backoff_seconds, cap=MAX_BACKOFF_SECONDS
        )
        try:
            return policy.call(
                attempt,
                retry_on=_Transient,
                retry_after=lambda failed: failed.retry_after,
                sleep=self._sleep,
                random=self._random,
            )
        except RetryAfterTooLong as exc:
            failed = exc.__cause__
            assert isinstance(failed, _Transient)
            # Holding a worker for minutes helps nobody; the next run retries.
            raise RetriableSourceError(
                f"{where}: {failed.reason}; {exc}, giving up", status=failed.status
            ) from failed.__cause__
        except _Transient as failed:
            tries = f" after {policy.attempts} attempts" if policy.attempts > 1 else ""
            raise RetriableSourceError(
                f"{where}: {failed.reason}{tries}", status=failed.status
            ) from failed.__cause__

    def _attempt(
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
        """One request: the answer, a ``_Transient`` to retry, or a fatal error."""
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
            raise _Transient(f"no complete answer within {timeout:g}s") from exc
        except ResponseTooLarge as exc:
            raise FatalSourceError(f"{where}: {_too_large(exc)}") from exc
        except requests.exceptions.SSLError as exc:
            raise FatalSourceError(f"{where}: TLS error: {redact(str(exc))}") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            broke = isinstance(exc, requests.exceptions.ChunkedEncodingError)
            what = "the answer broke off" if broke else "cannot connect"
            raise _Transient(f"{what}: {truncate(redact(str(exc)))}") from exc
        except requests.RequestException as exc:
            raise FatalSourceError(
                f"{where}: request failed: {truncate(redact(str(exc)))}"
            ) from exc
        if response.status < 300:
            return response
        status = response.status
        reason = _status_reason(response, redact)
        if error_class_for_status(status) is FatalSourceError:
            raise FatalSourceError(f"{where}: {reason}", status=status)
        waited = retry_after_seconds(response.headers.get("Retry-After"))
        raise _Transient(reason, status=status, retry_after=waited)

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
