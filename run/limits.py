"""Bounds on each connection's load: sessions at once and requests a second.

A connection's work is done by *lanes* (see :mod:`okr_pipeline.run.fetch`): threads that
fetch batches of its KRs in turn, each holding one session at a time. A lane takes one of
the connection's *slots* before it starts and gives it back when it is done, so a bound of
``max_concurrency`` slots is a bound on the connection's sessions.

Where the slots are kept decides how far the bound reaches:

- :class:`LocalLimits` (no Prefect server): semaphores in this process, so the bound holds
  over every fetch of the process, not beyond it.
- The Prefect flow's limits (``flows/limits.py``): one Prefect global concurrency limit
  per connection, taken with a lease, so the bound holds over every run and worker that
  share a Prefect server, and a crashed run's slots come back when its leases expire.

The rate limit (``rate_limit_per_second``) rides on the slots rather than asking a server
for every request: a connection's rate is split between its slots (:func:`share_rate`),
and each slot carries a :class:`Pacer` for its share. As no more slots exist than the
limit, the shares never add up to more than the rate, over every run and worker, at no
cost per request.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from okr_pipeline.okr_core.settings import ConnectionSettings

__all__ = [
    "DEFAULT_KEY_CONCURRENCY",
    "WINDOW_MARGIN_SECONDS",
    "ConnectionLimits",
    "KeyBounds",
    "LocalLimits",
    "Pacer",
    "connection_name",
    "key_bounds",
    "share_rate",
]

#: Slots of a concurrency key that names no connection (a host, a vendor's API).
DEFAULT_KEY_CONCURRENCY = 4

#: Added to every window: timers and the other side's clock are not exact to the
#: millisecond, and a request counted twice in one window would be refused.
WINDOW_MARGIN_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class KeyBounds:
    """What one concurrency key may do.

    Attributes:
        slots: Lanes at once (sessions), over everything that shares the limits.
        per_slot: With a rate limit, requests one slot may make in any ``window``;
            None without one.
        window: Seconds of the rate's window (1, or more for rates under one a second).
    """

    slots: int
    per_slot: int | None = None
    window: float = 1.0

    @property
    def rated(self) -> bool:
        """True when the key has a rate limit."""
        return self.per_slot is not None

    def pacer(self, clock: Callable[[], float] = time.monotonic) -> Pacer | None:
        """A fresh pacer for one slot's share of the rate, or None without a rate limit."""
        if self.per_slot is None:
            return None
        return Pacer(self.per_slot, self.window, clock=clock)


def share_rate(max_concurrency: int, rate: float) -> tuple[int, int, float]:
    """Split a rate between slots: ``(slots, requests per slot, window seconds)``.

    A quota of ``rate`` a second allows ``floor(rate)`` requests in any one-second window;
    with ``slots`` slots each may make ``floor(rate) // slots`` of them. The number of
    slots (at most ``max_concurrency``) is the one that lets the most requests through,
    the larger on a tie. A rate under one a second is one request per ``1 / rate`` seconds,
    on one slot.

    Args:
        max_concurrency: The connection's bound on sessions.
        rate: Requests a second.

    Returns:
        Slots, requests per slot in a window, and the window's length in seconds.
    """
    whole = math.floor(rate)
    if whole < 1:
        return 1, 1, 1.0 / rate
    best = max(range(1, min(max_concurrency, whole) + 1), key=lambda n: (n * (whole // n), n))
    return best, whole // best, 1.0


def connection_name(key: str) -> str:
    """The connection a concurrency key names (``sql:warehouse`` -> ``warehouse``)."""
    return key.partition(":")[2]


def key_bounds(key: str, connections: Mapping[str, ConnectionSettings]) -> KeyBounds:
    """The bounds of a concurrency key: its connection's settings, or the default.

    Args:
        key: ``"<type>:<connection>"`` (or another key, which gets the default).
        connections: The run's connections by name.
    """
    settings = connections.get(connection_name(key))
    if settings is None:
        return KeyBounds(DEFAULT_KEY_CONCURRENCY)
    if settings.rate_limit_per_second is None:
        return KeyBounds(settings.max_concurrency)
    slots, per_slot, window = share_rate(settings.max_concurrency, settings.rate_limit_per_second)
    return KeyBounds(slots, per_slot, window)


class Pacer:
    """One slot's share of a rate: at most ``per_window`` requests in any ``window``.

    A request is counted from the moment it may be sent until it is answered, which is
    when the other side may see it; the next one that would make ``per_window + 1`` in a
    window waits until the oldest of them was answered ``window`` seconds ago. So the
    bound holds however long the network takes, with no request sent early. Meant for
    one thread at a time (the slot's holder).

    Args:
        per_window: Requests allowed in any window.
        window: The window, in seconds.
        clock: Monotonic seconds (injectable for tests).
        sleep: Waits (injectable for tests).
    """

    def __init__(
        self,
        per_window: int,
        window: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_window < 1 or window <= 0:
            raise ValueError("a pacer needs at least one request in a window of some length")
        self.per_window = per_window
        self.window = window + WINDOW_MARGIN_SECONDS
        self._clock = clock
        self._sleep = sleep
        self._answered: deque[float] = deque()  # when each recent request was answered

    def wait(self, count: int = 1) -> None:
        """Wait until ``count`` more requests fit in the window (at most ``per_window``)."""
        count = min(count, self.per_window)
        while True:
            now = self._clock()
            while self._answered and self._answered[0] + self.window <= now:
                self._answered.popleft()
            excess = len(self._answered) + count - self.per_window
            if excess <= 0:
                return
            self._sleep(self._answered[excess - 1] + self.window - now)

    @contextmanager
    def request(self, count: int = 1) -> Iterator[None]:
        """Hold ``count`` requests' places in the window while the block runs.

        Args:
            count: Requests the block makes (a batch of queries), at most ``per_window``.
        """
        self.wait(count)
        try:
            yield
        finally:
            now = self._clock()
            self._answered.extend([now] * min(count, self.per_window))

    def clears_in(self) -> float:
        """Seconds until no request of this pacer is left in the window (0: none is)."""
        if not self._answered:
            return 0.0
        return max(0.0, self._answered[-1] + self.window - self._clock())

    def drain(self) -> None:
        """Wait until no request of this pacer is left in the window.

        Before a slot passes to another process, whose pacer starts empty: the two
        holders' requests then never share a window.
        """
        if self._answered:
            wait = self._answered[-1] + self.window - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._answered.clear()


class ConnectionLimits(Protocol):
    """Where a run takes its connections' slots (shared with other runs or not)."""

    def bounds(self, key: str) -> KeyBounds:
        """The bounds of ``key``: slots, and the rate's share per slot."""
        ...

    def expect(self, key: str, lanes: int) -> None:
        """Say that ``lanes`` lanes of ``key`` are about to ask for a slot each.

        An implementation may then take their slots together (one call to a server
        rather than one per lane); it must still serve every lane that comes, and may
        get fewer than ``lanes``.
        """
        ...

    def slot(self, key: str) -> AbstractContextManager[Pacer | None]:
        """Hold one of the key's slots for the block's duration (blocks until one is free).

        Args:
            key: The source's concurrency key (``sql:warehouse``, ``http:analytics``).

        Yields:
            The slot's pacer when the key has a rate limit (the holder paces every
            request with it), else None.
        """
        ...


class _SlotPool:
    """A process's slots of one key: a semaphore whose size follows the settings.

    Each slot keeps its pacer from holder to holder, so a new holder continues the last
    one's window instead of starting an empty one.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._bounds = KeyBounds(DEFAULT_KEY_CONCURRENCY)
        self._held: set[int] = set()
        self._pacers: dict[int, Pacer | None] = {}

    def configure(self, bounds: KeyBounds) -> None:
        with self._ready:
            if bounds != self._bounds:
                self._bounds = bounds
                self._pacers.clear()  # another rate: the next holders start afresh
                self._ready.notify_all()

    @contextmanager
    def hold(self, clock: Callable[[], float]) -> Iterator[Pacer | None]:
        with self._ready:
            while True:
                free = [i for i in range(self._bounds.slots) if i not in self._held]
                if free:
                    index = free[0]
                    break
                self._ready.wait()
            self._held.add(index)
            if index not in self._pacers:
                self._pacers[index] = self._bounds.pacer(clock)
            pacer = self._pacers[index]
        try:
            yield pacer
        finally:
            with self._ready:
                self._held.discard(index)
                self._ready.notify()


_POOLS: dict[str, _SlotPool] = {}
_POOLS_LOCK = threading.Lock()


class LocalLimits:
    """Connection limits kept in this process: they hold over every run it makes.

    Used when no shared limits are given (a run without a Prefect server). The slots of
    a key are shared by every :class:`LocalLimits` of the process; the latest settings
    size them.

    Args:
        connections: The run's connections by name.
        clock: Monotonic seconds for the pacers (injectable for tests).
    """

    def __init__(
        self,
        connections: Mapping[str, ConnectionSettings],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connections = connections
        self._clock = clock
        self._configured: set[str] = set()

    def bounds(self, key: str) -> KeyBounds:
        """The bounds of ``key`` from the settings."""
        return key_bounds(key, self._connections)

    def expect(self, key: str, lanes: int) -> None:
        """Nothing to prepare: a local slot costs no call."""

    @contextmanager
    def slot(self, key: str) -> Iterator[Pacer | None]:
        """Hold one of the process's slots of ``key`` (see :class:`ConnectionLimits`)."""
        with _POOLS_LOCK:
            pool = _POOLS.setdefault(key, _SlotPool())
        if key not in self._configured:
            pool.configure(self.bounds(key))
            self._configured.add(key)
        with pool.hold(self._clock) as pacer:
            yield pacer
