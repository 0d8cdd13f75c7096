"""JSON-over-HTTP calls with the product's guarantees, for every connector that speaks HTTP.

One attempt has one deadline covering connect, headers and the whole body
(``connectors.http_deadline``) and a size cap; transient failures (connection errors,
timeouts, 429, 5xx) are retried under the one retry policy (``okr_core.retry``: jittered
exponential backoff, ``Retry-After`` honoured); other 4xx are fatal at once. Every message
is redacted. Redirects are not followed: they could carry a credential to another host.
A connection's rate limit paces every attempt: the caller hands the pacing in with
:func:`paced` (the runner's lane does, see ``run/limits.py``).

Used by the generic ``http`` source and by the vendor connectors (``connectors.api_source``).
"""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from okr_pipeline.connectors.base import BaseSource, BaseSourceConfig, SourceEnvironment
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
from okr_pipeline.connectors.http_extract import NotJson, parse_json
from okr_pipeline.okr_core.redaction import Redactor, truncate
from okr_pipeline.okr_core.retry import (
    MAX_DELAY_SECONDS,
    RetryAfterTooLong,
    RetryPolicy,
    retry_after_seconds,
)

__all__ = [
    "MAX_RESPONSE_BYTES_LIMIT",
    "USER_AGENT",
    "ApiCall",
    "ApiClient",
    "ClientSource",
    "json_of",
    "paced",
]

USER_AGENT = "okr-pipeline"
MAX_RESPONSE_BYTES_LIMIT = 256 * 1024 * 1024
# An error answer is only quoted (200 characters), so only its start is read.
ERROR_BODY_BYTES = 64 * 1024


#: Given before each attempt: holds the attempt's place in its connection's rate window.
Pacing = Callable[[], AbstractContextManager[object]]
_PACING: ContextVar[Pacing | None] = ContextVar("okr_request_pacing", default=None)


@contextmanager
def paced(pacing: Pacing) -> Iterator[None]:
    """Pace every request this thread's :class:`ApiClient` s send in the block.

    Args:
        pacing: Called before each attempt (retries included); the attempt is sent inside
            the context it returns, which may wait first (a rate limit's window).
    """
    token = _PACING.set(pacing)
    try:
        yield
    finally:
        _PACING.reset(token)


@dataclass(frozen=True)
class ApiCall:
    """One request to make, with how long and how often to try.

    Attributes:
        method: ``GET`` or ``POST``.
        url: The absolute URL (its query string may hold more parameters).
        params: Query parameters.
        headers: Request headers (credentials included; never shown).
        json_body: A JSON body (POST), or None.
        form: A form body (POST, ``application/x-www-form-urlencoded``), or None.
        timeout: Seconds for one attempt as a whole.
        max_bytes: Largest success answer accepted.
        retries: Retries after a transient failure.
        backoff_seconds: The first wait of the retry policy.
        retry_answer: For a vendor whose "slow down" is not a plain 429 (GitHub's rate limit
            may be a 403 and names its reset time in its own header): given an unsuccessful
            answer, the seconds to wait before the next attempt (it is then retried, the
            policy's cap on waits holding), or None for the usual classification.
    """

    method: str
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    json_body: Any = None
    form: Mapping[str, str] | None = field(default=None, repr=False)
    timeout: float = 30.0
    max_bytes: int = 10 * 1024 * 1024
    retries: int = 3
    backoff_seconds: float = 0.5
    retry_answer: Callable[[Answer], float | None] | None = field(
        default=None, repr=False, compare=False
    )


class _Transient(Exception):
    """One attempt failed in a way the next one may not; ``__cause__`` is the transport's."""

    def __init__(
        self,
        reason: str,
        *,
        short: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.short = short
        self.status = status
        self.retry_after = retry_after


class ApiClient:
    """Makes :class:`ApiCall` s from many threads at once: one HTTP session per thread.

    Args:
        sleep: Called to wait between retries; injectable so tests need not wait.
        random: Numbers in [0, 1) for the retry jitter; injectable so tests can fix them.
    """

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._sleep = sleep
        self._random = random
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def send(self, call: ApiCall, *, where: str, redact: Redactor) -> Answer:
        """Make the attempts the retry policy allows; return the first success answer.

        Args:
            call: The request.
            where: ``"KR o/k: <type> source <method> <url>"``, the start of every message.
            redact: Removes the run's secrets from anything quoted.

        Returns:
            The answer (status below 300).

        Raises:
            RetriableSourceError: Connection error, no complete answer in time, 429 or 5xx,
                after every attempt.
            FatalSourceError: Other 4xx, a redirect, TLS, an answer over ``max_bytes``.
        """
        policy = RetryPolicy(
            attempts=call.retries + 1, first_delay=call.backoff_seconds, cap=MAX_DELAY_SECONDS
        )
        attempt = partial(self._attempt, call, where, redact)
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
                f"{where}: {failed.reason}; {exc}, giving up",
                status=failed.status,
                short=f"{failed.short}; {exc}, giving up",
            ) from failed.__cause__
        except _Transient as failed:
            tries = f" after {policy.attempts} attempts" if policy.attempts > 1 else ""
            raise RetriableSourceError(
                f"{where}: {failed.reason}{tries}", status=failed.status, short=failed.short + tries
            ) from failed.__cause__

    def send_json(self, call: ApiCall, *, where: str, redact: Redactor) -> Any:
        """:meth:`send`, then the answer parsed as JSON (a non-JSON answer is fatal)."""
        return json_of(self.send(call, where=where, redact=redact), where, redact)

    def _attempt(self, call: ApiCall, where: str, redact: Redactor) -> Answer:
        """One request: the answer, a ``_Transient`` to retry, or a fatal error."""
        pacing = _PACING.get()
        try:
            with pacing() if pacing is not None else nullcontext():
                response = request_within(
                    self._session(),
                    call.method,
                    call.url,
                    params=dict(call.params),
                    headers=dict(call.headers),
                    json_body=call.json_body,
                    form=call.form,
                    seconds=call.timeout,
                    max_bytes=call.max_bytes,
                    error_bytes=ERROR_BODY_BYTES,
                )
        except (DeadlineExceeded, requests.Timeout) as exc:
            within = f"no complete answer within {call.timeout:g}s"
            raise _Transient(within, short=f"{within} from {_host(call)}") from exc
        except ResponseTooLarge as exc:
            raise FatalSourceError(f"{where}: {_too_large(exc)}") from exc
        except requests.exceptions.SSLError as exc:
            raise FatalSourceError(
                f"{where}: TLS error: {redact(str(exc))}", short=f"TLS error with {_host(call)}"
            ) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            broke = isinstance(exc, requests.exceptions.ChunkedEncodingError)
            what = "the answer broke off" if broke else "cannot connect"
            short = (
                f"the answer from {_host(call)} broke off"
                if broke
                else f"cannot connect to {_host(call)} ({connection_failure(exc)})"
            )
            raise _Transient(f"{what}: {truncate(redact(str(exc)))}", short=short) from exc
        except requests.RequestException as exc:
            raise FatalSourceError(
                f"{where}: request failed: {truncate(redact(str(exc)))}"
            ) from exc
        if response.status < 300:
            return response
        status = response.status
        reason = _status_reason(response, redact)
        short = f"{_status_line(response)} from {_target(call, redact)}"
        vendor_wait = call.retry_answer(response) if call.retry_answer else None
        if vendor_wait is not None:
            raise _Transient(reason, short=short, status=status, retry_after=vendor_wait)
        if error_class_for_status(status) is FatalSourceError:
            raise FatalSourceError(f"{where}: {reason}", status=status, short=short)
        waited = retry_after_seconds(response.headers.get("Retry-After"))
        raise _Transient(reason, short=short, status=status, retry_after=waited)

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

    @property
    def sessions(self) -> int:
        """How many per-thread sessions are open."""
        return len(self._sessions)

    def close(self) -> None:
        """Close every per-thread HTTP session. Safe to call more than once."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()


ConfigT = TypeVar("ConfigT", bound=BaseSourceConfig)


class ClientSource(BaseSource[ConfigT]):
    """A source that calls over HTTP: it holds one :class:`ApiClient` and closes it.

    Args:
        env: Connections and secrets of this run.
        sleep: Called to wait between retries; injectable so tests need not wait.
        random: Numbers in [0, 1) for the retry jitter; injectable so tests can fix them.
    """

    def __init__(
        self,
        env: SourceEnvironment,
        *,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        super().__init__(env)
        self._client = ApiClient(sleep=sleep, random=random)

    def close(self) -> None:
        """Close every per-thread HTTP session."""
        self._client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sessions={self._client.sessions}, env={self.env!r})"


def json_of(answer: Answer, where: str, redact: Redactor) -> Any:
    """The answer's body parsed as JSON, every number an exact ``Decimal``.

    Raises:
        FatalSourceError: The body is not JSON (quoted, redacted, truncated).
    """
    try:
        return parse_json(answer.content)
    except NotJson as exc:
        text = answer.content.decode(answer.encoding or "utf-8", errors="replace")
        raise FatalSourceError(
            f"{where}: the response is not JSON ({exc}): {truncate(redact(text), 200)!r}"
        ) from exc


def _status_line(answer: Answer) -> str:
    return f"HTTP {answer.status} {answer.reason}".rstrip()


def _status_reason(answer: Answer, redact: Redactor) -> str:
    text = answer.content.decode(answer.encoding or "utf-8", errors="replace")
    reason = _status_line(answer)
    if 300 <= answer.status < 400:
        location = redact(answer.headers.get("Location", "?"))
        return f"{reason}: redirected to {location}; use that URL (redirects are not followed)"
    # An error page is often HTML over many lines: quoted on one line, its start only.
    body = " ".join(text.split())
    return f"{reason}: {truncate(redact(body), 200)}" if body else reason


#: Words of a connection error (any driver, any OS) and what they mean, first match wins.
_CONNECTION_FAILURES = (
    ("connection refused", "connection refused"),
    ("name or service not known", "host not found"),
    ("nodename nor servname", "host not found"),
    ("name resolution", "host not found"),
    ("failed to resolve", "host not found"),
    ("getaddrinfo failed", "host not found"),
    ("timed out", "timed out"),
    ("network is unreachable", "network unreachable"),
    ("no route to host", "no route to host"),
    ("connection reset", "connection reset"),
    ("remote end closed", "closed by the server"),
    ("connection aborted", "closed by the server"),
)


def connection_failure(exc: BaseException) -> str:
    """A few words for why a connection failed ("connection refused", "host not found")."""
    text = str(exc).lower()
    for words, meaning in _CONNECTION_FAILURES:
        if words in text:
            return meaning
    return "connection failed"


def _host(call: ApiCall) -> str:
    parts = urlsplit(call.url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


#: The longest path quoted in a short message; a longer one keeps its end.
_PATH_SHOWN = 60


def _target(call: ApiCall, redact: Redactor) -> str:
    path = redact(urlsplit(call.url).path)
    if len(path) > _PATH_SHOWN:
        path = "…" + path[-(_PATH_SHOWN - 1) :]
    return f"{_host(call)}{path}"


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
