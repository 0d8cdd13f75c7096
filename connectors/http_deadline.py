"""One HTTP attempt within a total deadline and a size cap.

requests' ``timeout`` bounds each socket operation, not the request: a server that sends one
byte every two seconds never trips a 3 s read timeout, and holds the caller for as long as it
likes. Here an attempt gets one deadline covering connect, headers and the whole body. A
watchdog timer shuts the attempt's socket down when the deadline passes, which wakes a read
blocked in another thread at once; the body is read in chunks, and refused beyond a size cap
(the ``Content-Length`` a server declares is checked first, then what it really sends).

The watchdog finds the attempt's connection through connection pools that report every
connection they hand out (:class:`DeadlineAdapter`); mount it on the session that sends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager, ProxyManager

if TYPE_CHECKING:  # a typing-only Protocol in urllib3
    from urllib3._base_connection import BaseHTTPConnection

__all__ = [
    "CHUNK_BYTES",
    "Answer",
    "DeadlineAdapter",
    "DeadlineExceeded",
    "ResponseTooLarge",
    "request_within",
]

CHUNK_BYTES = 64 * 1024
# A timer that fired while the connection was still being set up looks again this soon.
_RECHECK_SECONDS = 0.05


class DeadlineExceeded(Exception):
    """The attempt had no complete answer (headers and whole body) before its deadline."""


class ResponseTooLarge(Exception):
    """The answer is larger than the cap.

    Attributes:
        limit: The cap, in bytes.
        declared: The size the server declared in ``Content-Length``, if that is what
            exceeded the cap; None when the body itself grew past it.
    """

    def __init__(self, limit: int, declared: int | None) -> None:
        super().__init__(f"response larger than {limit} bytes")
        self.limit = limit
        self.declared = declared


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer, read within the deadline.

    Attributes:
        status: HTTP status code.
        reason: HTTP reason phrase.
        headers: Response headers (case-insensitive).
        content: The body, decoded from any Content-Encoding.
        encoding: The charset the headers declare, if any.
    """

    status: int
    reason: str
    headers: Mapping[str, str]
    content: bytes
    encoding: str | None


class _Watchdog:
    """Shuts down the sockets of one attempt when its deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._connections: list[BaseHTTPConnection] = []
        self._sockets: list[socket.socket] = []
        self._done = False
        self._fired = False
        self._timer: threading.Timer | None = None
        self._arm(seconds)

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self.deadline

    @property
    def fired(self) -> bool:
        """Whether the attempt's sockets were shut down: what was read since is not whole."""
        return self._fired

    def _arm(self, delay: float) -> None:
        timer = threading.Timer(delay, self._fire)
        timer.daemon = True  # never keeps the process alive
        self._timer = timer
        timer.start()

    def watch(self, connection: BaseHTTPConnection) -> None:
        with self._lock:
            if not self._done:
                self._connections.append(connection)

    def watch_socket(self, sock: socket.socket | None) -> None:
        # The response's socket: a connection that will close hands it over to the
        # response once the headers are read, and forgets it.
        if sock is None:
            return
        with self._lock:
            if not self._done:
                self._sockets.append(sock)
                if self._fired:
                    _shut_down(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._fired = True
            sockets = [getattr(c, "sock", None) for c in self._connections] + self._sockets
            found = [sock for sock in sockets if isinstance(sock, socket.socket)]
            for sock in found:
                _shut_down(sock)
            if not found:
                # No socket yet: the connect has its own timeout, but the attempt could go
                # on to read headers from a socket made after this moment.
                self._arm(_RECHECK_SECONDS)

    def finish(self) -> None:
        with self._lock:
            self._done = True
            if self._timer is not None:
                self._timer.cancel()


def _shut_down(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would unwrap the TLS
    # state under the reading thread's feet. The blocked read then returns end of file. An
    # OSError means it is closed already: nothing left to wake.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _response_socket(response: requests.Response) -> socket.socket | None:
    # requests -> urllib3 response -> http.client response -> its file -> SocketIO -> socket.
    # Looked up defensively: anything else (a test double, another transport) gives None,
    # and the deadline then rests on the connection's socket and the per-read timeout.
    reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
    sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


_CURRENT = threading.local()


def _report(connection: BaseHTTPConnection) -> BaseHTTPConnection:
    watchdog: _Watchdog | None = getattr(_CURRENT, "watchdog", None)
    if watchdog is not None:
        watchdog.watch(connection)
    return connection


class _ReportingHTTPPool(HTTPConnectionPool):
    # Overrides the hook that hands out connections (new or reused); the connection class
    # itself stays urllib3's, so anything that patches it (vcrpy in tests) still works.
    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        return _report(super()._get_conn(timeout))


class _ReportingHTTPSPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        return _report(super()._get_conn(timeout))


_POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {
    "http": _ReportingHTTPPool,
    "https": _ReportingHTTPSPool,
}


class DeadlineAdapter(HTTPAdapter):
    """An HTTP adapter whose connections the deadline watchdog can shut down."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Create the pool manager with reporting connection pools.

        Args:
            connections: Number of pools to cache.
            maxsize: Connections kept per pool.
            block: Whether to wait for a free connection.
            **pool_kwargs: Passed to urllib3's PoolManager.
        """
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        manager: PoolManager = self.poolmanager
        manager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Return the proxy manager for ``proxy``, with reporting pools for HTTP(S) proxies.

        Args:
            proxy: The proxy URL.
            **proxy_kwargs: Passed to urllib3's ProxyManager.

        Returns:
            The proxy manager.
        """
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # SOCKS managers have pool classes of their own; those keep the per-read timeout
        # and the between-chunks deadline check only.
        if type(manager) is ProxyManager:
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager


def request_within(
    session: requests.Session,
    method: str,
    url: str,
    *,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    json_body: Any,
    seconds: float,
    max_bytes: int,
    error_bytes: int,
    form: Mapping[str, str] | None = None,
) -> Answer:
    """Send one request and read the whole answer within ``seconds``.

    Redirects are not followed. The session should have :class:`DeadlineAdapter` mounted;
    without it, a server trickling its headers is bounded only per read.

    Args:
        session: The session to send with.
        method: HTTP method.
        url: Absolute URL.
        params: Query parameters.
        headers: Request headers.
        json_body: JSON body, or None.
        seconds: Total time for connect, headers and the whole body.
        max_bytes: Largest body accepted for a success (status below 300).
        error_bytes: Bytes of an error answer kept (the rest is dropped, not refused).
        form: A form body (``application/x-www-form-urlencoded``), or None.

    Returns:
        The complete answer.

    Raises:
        DeadlineExceeded: No complete answer within ``seconds``.
        ResponseTooLarge: A success answer larger than ``max_bytes``.
        requests.RequestException: Any other failure (connection, TLS, broken body).
    """
    watchdog = _Watchdog(seconds)
    _CURRENT.watchdog = watchdog
    try:
        response = session.request(
            method,
            url,
            params=params,
            headers=headers,
            json=json_body,
            data=form,
            # Each socket operation is also bounded (the connect, above all); the watchdog
            # bounds their sum.
            timeout=(seconds, seconds),
            allow_redirects=False,
            stream=True,
        )
        with response:
            watchdog.watch_socket(_response_socket(response))
            ok = response.status_code < 300
            content = _read(response, watchdog, max_bytes if ok else error_bytes, refuse=ok)
            if watchdog.fired:
                # The shutdown made the read end early: headers or body are cut short.
                raise DeadlineExceeded
            return Answer(
                status=response.status_code,
                reason=response.reason or "",
                headers=response.headers,
                content=content,
                encoding=response.encoding,
            )
    except (ResponseTooLarge, DeadlineExceeded):
        raise
    except Exception as exc:
        # Whatever the shutdown socket raised (end of file, broken chunk, TLS error), the
        # cause is the deadline.
        if watchdog.expired:
            raise DeadlineExceeded from exc
        raise
    finally:
        watchdog.finish()
        _CURRENT.watchdog = None


def _read(response: requests.Response, watchdog: _Watchdog, limit: int, *, refuse: bool) -> bytes:
    declared = _declared_length(response)
    if refuse and declared is not None and declared > limit:
        raise ResponseTooLarge(limit, declared)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(CHUNK_BYTES):
        if watchdog.expired:
            raise DeadlineExceeded
        size += len(chunk)
        if size > limit:
            if refuse:
                raise ResponseTooLarge(limit, None)
            chunks.append(chunk[: len(chunk) - (size - limit)])
            break  # an error answer: its start is enough to say what went wrong
        chunks.append(chunk)
    return b"".join(chunks)


def _declared_length(response: requests.Response) -> int | None:
    try:
        return int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
