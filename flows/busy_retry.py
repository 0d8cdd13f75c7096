"""A Prefect client that asks a busy server again within milliseconds, not seconds.

A Prefect server on SQLite answers 503 when its database is locked for a moment, which
happens whenever it writes a burst of events (the task runs that just ended, an
artifact). Prefect's client then waits two seconds or more before it asks again. For the
connection limits' calls, which a run's lanes wait on before their first query, that
pause was most of a 1,000-KR run: 2.1-2.5 s of its 3.3-3.9 s. The lock is gone within
milliseconds, so each attempt of Prefect's is here tried a few more times after short
pauses (0.77 s in all) before Prefect's own back-off takes over; everything else the
client does (headers, CSRF, errors, other retries) is unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from prefect.client.orchestration import SyncPrefectClient

__all__ = ["BUSY_PAUSES", "retry_busy_quickly"]

#: Seconds between quick tries of a request the server answered 503.
BUSY_PAUSES = (0.02, 0.05, 0.1, 0.2, 0.4)
_BUSY = 503

_log = logging.getLogger(__name__)

Send = Callable[..., httpx.Response]


def _quickly(send: Send, pauses: tuple[float, ...], sleep: Callable[[float], None]) -> Send:
    """``send``, a 503 sent again after each of ``pauses``; the last answer returned."""

    def send_again(request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        for pause in pauses:
            response = send(request, *args, **kwargs)
            if response.status_code != _BUSY:
                return response
            response.close()
            sleep(pause)
        return send(request, *args, **kwargs)

    return send_again


def retry_busy_quickly(
    client: SyncPrefectClient,
    pauses: tuple[float, ...] = BUSY_PAUSES,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncPrefectClient:
    """Make ``client`` try a request the server answered 503 again after ``pauses``.

    Applied to this client only. A Prefect version whose client is built otherwise is left
    as it is (its own retries still apply), with a debug line.

    Args:
        client: A sync Prefect client.
        pauses: Seconds to wait before each quick try.
        sleep: Waits (tests pass their own).

    Returns:
        The same client.
    """
    http = getattr(client, "_client", None)
    with_retries = getattr(http, "_send_with_retry", None)
    if with_retries is None:
        _log.debug("Prefect's client has no _send_with_retry: 503s are retried as Prefect does")
        return client

    def send_with_retry(*args: Any, **kwargs: Any) -> httpx.Response:
        kwargs["send"] = _quickly(kwargs["send"], pauses, sleep)
        return with_retries(*args, **kwargs)  # type: ignore[no-any-return]

    # An attribute of this instance: other clients keep the class's method.
    http._send_with_retry = send_with_retry  # type: ignore[union-attr]
    return client
