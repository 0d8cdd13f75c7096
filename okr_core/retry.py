"""One retry policy for everything that calls out: metric sources and alert channels.

Jittered exponential backoff with a cap, and a server's ``Retry-After`` honoured::

    before retry n (n = 1 before the second attempt):
        ceiling = min(cap, first_delay * 2 ** (n - 1))
        delay   = ceiling * (1 - jitter) + ceiling * jitter * random()   # random() in [0, 1)

With the default ``jitter=0.5`` ("equal jitter") each wait lies in ``[ceiling / 2, ceiling)``.
A ``Retry-After`` the server sends replaces that wait; one longer than the cap is refused
(``RetryAfterTooLong``): holding a worker for minutes helps nobody, the next run retries.

The random source and the sleep are parameters, so tests are deterministic and instant.
"""

from __future__ import annotations

import email.utils
import math
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

__all__ = [
    "MAX_DELAY_SECONDS",
    "RetryAfterTooLong",
    "RetryPolicy",
    "retry_after_seconds",
]

MAX_DELAY_SECONDS = 30.0

T = TypeVar("T")
E = TypeVar("E", bound=Exception)

# Beyond 2**64 times any sane first delay the cap has long been reached; bounding the
# exponent keeps a huge retry number from overflowing a float.
_MAX_EXPONENT = 64


class RetryAfterTooLong(Exception):
    """The server asks for a longer wait than the policy's cap: give up for now.

    Raised from the failure that carried the ``Retry-After`` (it is ``__cause__``).

    Attributes:
        seconds: The wait the server asked for.
        cap: The policy's longest wait.
    """

    def __init__(self, seconds: float, cap: float) -> None:
        super().__init__(f"the server asks to retry after {seconds:g}s (more than {cap:g}s)")
        self.seconds = seconds
        self.cap = cap


@dataclass(frozen=True)
class RetryPolicy:
    """How often to try and how long to wait in between.

    Jitter is "equal jitter" by default (half of each wait fixed, half random) rather than
    "full jitter" (all of it random): the retries here are few and wait for one server to
    recover, so a wait drawn near zero would spend a retry on a server still down; keeping
    half the exponential wait still spaces the attempts, while the random half spreads the
    many fetches of one run (started together against one API) so they do not retry in
    lockstep.

    Attributes:
        attempts: Tries in all, the first included (at least 1; 1 means no retry).
        first_delay: Ceiling of the wait before the first retry, in seconds; it doubles
            for each further retry.
        cap: Longest wait, in seconds; also the longest ``Retry-After`` honoured.
        jitter: Share of each wait that is random, from 0 (none: exactly the ceiling) to 1
            (full jitter); 0.5 is equal jitter.
    """

    attempts: int = 3
    first_delay: float = 0.5
    cap: float = MAX_DELAY_SECONDS
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.first_delay < 0 or self.cap < 0:
            raise ValueError(
                f"first_delay and cap must be >= 0, got {self.first_delay} and {self.cap}"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number ``retry``.

        Args:
            retry: 1 before the second attempt, 2 before the third, and so on.

        Returns:
            ``min(cap, first_delay * 2 ** (retry - 1))``.
        """
        exponent = min(max(retry, 1) - 1, _MAX_EXPONENT)
        return min(self.cap, self.first_delay * 2.0**exponent)

    def delay(
        self,
        retry: int,
        *,
        retry_after: float | None = None,
        random: Callable[[], float] = _random.random,
    ) -> float:
        """The wait before retry number ``retry``.

        Args:
            retry: 1 before the second attempt, 2 before the third, and so on.
            retry_after: Seconds the server asked to wait (``Retry-After``), if any.
            random: Source of numbers in [0, 1) for the jitter.

        Returns:
            ``retry_after`` when given (the server chose; no jitter added, it may already
            spread its clients), else the jittered exponential wait, in
            ``[ceiling * (1 - jitter), ceiling]``.

        Raises:
            RetryAfterTooLong: ``retry_after`` is longer than the cap.
        """
        if retry_after is not None:
            if retry_after > self.cap:
                raise RetryAfterTooLong(retry_after, self.cap)
            return max(0.0, retry_after)
        ceiling = self.ceiling(retry)
        return ceiling * (1 - self.jitter) + ceiling * self.jitter * random()

    def call(
        self,
        attempt: Callable[[], T],
        *,
        retry_on: type[E],
        retry_after: Callable[[E], float | None] | None = None,
        on_retry: Callable[[E, int, float], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
    ) -> T:
        """Call ``attempt`` until it returns, waiting between tries as this policy says.

        Args:
            attempt: One try; its return value is returned.
            retry_on: The exception that means "may work next time"; any other one
                propagates at once.
            retry_after: The server's requested wait carried by a failure, if any.
            on_retry: Told ``(failure, attempt number, wait)`` before each wait (to log).
            sleep: Waits; injectable so tests need not.
            random: Source of numbers in [0, 1) for the jitter.

        Returns:
            What ``attempt`` returned.

        Raises:
            E: The last ``retry_on`` failure, once the attempts are used up.
            RetryAfterTooLong: A failure asked for a wait over the cap (chained from it);
                raised on the last attempt too, so the caller can say why it stops.
        """
        tried = 0
        while True:
            tried += 1
            try:
                return attempt()
            except retry_on as failure:
                asked = retry_after(failure) if retry_after is not None else None
                if asked is not None and asked > self.cap:
                    raise RetryAfterTooLong(asked, self.cap) from failure
                if tried >= self.attempts:
                    raise
                wait = self.delay(tried, retry_after=asked, random=random)
                if on_retry is not None:
                    on_retry(failure, tried, wait)
                sleep(wait)


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
        seconds = float(value)
    except ValueError:
        pass
    else:
        # float() also takes "nan" and "inf", which are no delay a server means.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
