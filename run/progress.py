"""How far a run got, told to whoever shows it (the CLI's progress line), by phase.

A run says which phase it is in (``loading the OKR files``, ``fetching 8 KRs``, ``storing
the results``, ``sending alerts``) and, while it fetches, how many KRs are done (``fetching
12/40 KRs``: :func:`fetch_counts`, the fetch step's progress hook). A driver that shows
progress listens for the time of a call. Listeners live in this process only and are called
in the run's thread: nothing is told when nobody listens, so the run costs nothing more for
it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Told ``(phase, done, total)``; ``total`` is None for a phase without steps to count.
Listener = Callable[[str, int, int | None], None]
#: A fetch's progress hook (``run.fetch.fetch_all``): told ``(done, total)`` KRs.
FetchHook = Callable[[int, int], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Tell ``listener`` every phase a run reports while the block runs."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def report(phase: str, done: int = 0, total: int | None = None) -> None:
    """Say that the run is in ``phase`` (``done`` of ``total`` steps, when counted).

    A listener that fails is ignored: showing progress must never fail a run.
    """
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        with contextlib.suppress(Exception):  # a progress display never fails a run
            listener(phase, done, total)


def fetch_counts(done: int, total: int) -> None:
    """The fetch step's progress hook: ``fetching 12/40 KRs``, counted, to the listeners."""
    report(f"fetching {done}/{total} KR{'' if total == 1 else 's'}", done, total)


def chained(*hooks: FetchHook) -> FetchHook:
    """One fetch progress hook that tells each of ``hooks`` in turn.

    The Prefect flow tells both its progress artifact and :func:`fetch_counts` (the CLI's bar).
    """

    def tell(done: int, total: int) -> None:
        for hook in hooks:
            hook(done, total)

    return tell
