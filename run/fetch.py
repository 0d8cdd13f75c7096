"""Fetch the current value of many key results at once, with bounded concurrency.

A company has thousands of KRs, and a Prefect task run costs several milliseconds while an
indexed query costs about half of one, so the fetching is plain threads inside one task.
KRs are grouped by their source's concurrency key (one database or API connection). Each
key gets *lanes*, threads that take batches of its KRs in turn; all lanes share one pool
of ``Settings.max_concurrency`` threads. A batch is up to the source's ``max_batch`` KRs,
which lets the SQL source run many queries over one connection and transaction.

A lane holds one of its connection's slots while it runs (``run/limits.py``): the slots
are ``ConnectionSettings.max_concurrency``, kept in this process or by the Prefect server
(then the bound holds over every run and worker). A lane holds one session at a time, and
gives back the one it leaves idle before its slot, so a run never keeps more sessions
open than the slots it holds. With a rate limit, the slot's pacer paces each request
(HTTP, retries included) or each batch (as many places as queries).

Prefect's timeouts cannot interrupt a blocking call in a worker thread, so every source
sets its own network and statement timeouts; here we only bound how many run at once.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from okr_pipeline.connectors.api_client import ClientSource, paced
from okr_pipeline.connectors.base import (
    BaseSource,
    BaseSourceConfig,
    SourceContext,
    SourceEnvironment,
)
from okr_pipeline.connectors.errors import RetriableSourceError, SourceError, short_message
from okr_pipeline.connectors.registry import get_source_class, parse_source_config
from okr_pipeline.connectors.values import NotANumberError, to_decimal
from okr_pipeline.okr_core.redaction import redact_text
from okr_pipeline.run.limits import DEFAULT_KEY_CONCURRENCY, ConnectionLimits, LocalLimits, Pacer

__all__ = [
    "DEFAULT_KEY_CONCURRENCY",
    "FetchRequest",
    "FetchResult",
    "Progress",
    "ResultsHook",
    "SourcePool",
    "fetch_all",
]

#: Told ``(done, total)`` while a run fetches (the Prefect flow updates a progress artifact).
Progress = Callable[[int, int], None]

#: Given each batch of results as it arrives (a run scores and stores them meanwhile).
ResultsHook = Callable[[Sequence["FetchResult"]], None]


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One value to fetch: which KR, from which source, as of when."""

    kr_id: int
    kr_ref: str
    source: Mapping[str, Any]
    as_of: datetime
    cycle_start: datetime
    cycle_end: datetime


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a source answered for one KR: a value, no data (``value is None``), or an error."""

    kr_id: int
    measured_at: datetime
    value: Decimal | None = None
    error: str | None = None
    error_kind: str | None = None
    #: One short line for ``error`` (what a run prints); ``error`` is the whole story.
    error_brief: str | None = None

    @property
    def ok(self) -> bool:
        """True when the source answered (with a value or with no data)."""
        return self.error is None

    def error_line(self) -> str:
        """The error in one short line (the run's summary, the status reason, alerts)."""
        return self.error_brief or short_message(self.error or "")


class SourcePool:
    """One connector instance per source type for a run, closed together at the end."""

    def __init__(self, env: SourceEnvironment) -> None:
        self._env = env
        self._sources: dict[str, BaseSource[Any]] = {}
        self._lock = threading.Lock()

    def get(self, config: BaseSourceConfig) -> BaseSource[Any]:
        """Return the shared source instance for ``config.type``."""
        with self._lock:
            source = self._sources.get(config.type)
            if source is None:
                source = get_source_class(config.type)(self._env)
                self._sources[config.type] = source
            return source

    def close(self) -> None:
        """Release every engine and session the sources opened."""
        for source in self._sources.values():
            source.close()
        self._sources.clear()

    def __enter__(self) -> SourcePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


LANES_PER_LIMIT = 4  # batches per lane at least, so that lanes share the work evenly


def _result(
    kr_id: int,
    outcome: Decimal | Exception | None,
    when: datetime,
    source: Mapping[str, Any] | None = None,
) -> FetchResult:
    if not isinstance(outcome, Exception):
        try:
            # Built-in connectors return checked values already; any connector's value must
            # be a finite number within what the store holds, or it is that KR's error.
            return FetchResult(kr_id, when, value=to_decimal(outcome))
        except NotANumberError as exc:
            return FetchResult(kr_id, when, error=f"the value {exc}", error_kind="fatal")
    if isinstance(outcome, SourceError):
        kind = "retriable" if isinstance(outcome, RetriableSourceError) else "fatal"
        return FetchResult(
            kr_id, when, error=str(outcome), error_kind=kind, error_brief=_brief(outcome, source)
        )
    # A connector bug must not stop the run; it is reported with the KR.
    return FetchResult(
        kr_id, when, error=f"{type(outcome).__name__}: {outcome}", error_kind="internal"
    )


def _brief(error: SourceError, source: Mapping[str, Any] | None) -> str:
    """The error's short line, naming the source's connection when it does not already."""
    short = error.short
    connection = source.get("connection") if source else None
    if isinstance(connection, str) and connection not in short:
        return f"{connection}: {short}"
    return short


def fetch_all(
    requests: Sequence[FetchRequest],
    env: SourceEnvironment,
    *,
    max_concurrency: int,
    clock: Callable[[], datetime],
    pool: SourcePool | None = None,
    progress: Progress | None = None,
    progress_every: float = 1.0,
    limits: ConnectionLimits | None = None,
    on_results: ResultsHook | None = None,
) -> list[FetchResult]:
    """Fetch every request concurrently; one failure never stops the others.

    Args:
        requests: The KRs to fetch.
        env: Connections and secrets the sources may use.
        max_concurrency: Sources running at once, over all connections.
        clock: Returns the current time (aware UTC); stamps each measurement.
        pool: Source instances to reuse; a private one is opened and closed otherwise.
        progress: Told ``(done, total)`` in the calling thread (never in a worker): once
            as the fetch starts (the KRs done before it: those with an invalid source), at
            most every ``progress_every`` seconds while fetching, and once at the end.
        progress_every: Seconds between two calls of ``progress``.
        limits: Where lanes take their connections' slots (shared with other runs
            through Prefect); default: this process's own (:class:`LocalLimits`).
        on_results: Given every result once, in the calling thread, a batch at a time as
            the batches arrive (those of invalid sources first), while the lanes go on.

    Returns:
        One result per request, in the order of ``requests``.
    """
    results: list[FetchResult | None] = [None] * len(requests)
    queues: dict[str, deque[list[tuple[int, BaseSourceConfig]]]] = {}
    grouped: dict[str, list[tuple[int, BaseSourceConfig]]] = {}
    for index, request in enumerate(requests):
        try:
            config = parse_source_config(request.source)
            key = config.concurrency_key()  # a third-party connector's may raise too
        except Exception as exc:  # noqa: BLE001 - a bad stored source fails that KR only
            results[index] = FetchResult(
                request.kr_id,
                clock(),
                error=f"invalid source: {redact_text(str(exc))}",
                error_kind="config",
            )
            continue
        grouped.setdefault(key, []).append((index, config))

    own_pool = pool is None
    sources = pool or SourcePool(env)
    slots = limits or LocalLimits(env.connections)
    lanes: list[tuple[str, int]] = []
    for key, items in grouped.items():
        bounds = slots.bounds(key)
        limit = bounds.slots
        max_batch = max(1, get_source_class(items[0][1].type).max_batch)
        if bounds.per_slot is not None:
            # A batch's queries go out back to back: no more than a slot's share of a window.
            max_batch = min(max_batch, bounds.per_slot)
        size = max(1, min(max_batch, math.ceil(len(items) / (limit * LANES_PER_LIMIT))))
        queues[key] = deque(items[i : i + size] for i in range(0, len(items), size))
        lanes.append((key, min(limit, len(queues[key]))))

    invalid = sum(1 for r in results if r is not None)  # done already, without a query
    # Each lane puts the indexes of every batch it finished, then None once it ends: the
    # caller's thread counts and hands over the results from there.
    finished: queue.SimpleQueue[list[int] | None] = queue.SimpleQueue()
    if on_results is not None and invalid:
        on_results([r for r in results if r is not None])

    def lane(key: str) -> None:
        try:
            batches = queues[key]
            if not batches:
                return  # the other lanes took every batch: no slot needed
            with slots.slot(key) as pacer:
                used: dict[str, BaseSource[Any]] = {}
                try:
                    run_lane(batches, pacer, used)
                finally:
                    # Before the slot goes back: the session this lane leaves idle in a
                    # pool is closed, so the run holds no more sessions than slots.
                    for source in used.values():
                        _release_session(source, key)
        finally:
            finished.put(None)

    def run_lane(
        queue: deque[list[tuple[int, BaseSourceConfig]]],
        pacer: Pacer | None,
        used: dict[str, BaseSource[Any]],
    ) -> None:
        while True:
            try:
                batch = queue.popleft()  # deque.popleft is atomic: lanes need no lock
            except IndexError:
                return
            items = [
                (
                    config,
                    SourceContext(
                        as_of=requests[i].as_of,
                        cycle_start=requests[i].cycle_start,
                        cycle_end=requests[i].cycle_end,
                        kr_ref=requests[i].kr_ref,
                    ),
                )
                for i, config in batch
            ]
            try:
                source = sources.get(batch[0][1])
                used[source.type_name] = source
                outcomes = _fetch_paced(source, items, pacer)
            except Exception as exc:  # noqa: BLE001 - a connector bug fails its batch only
                outcomes = [exc] * len(batch)
            when = clock()
            for (i, _), outcome in zip(batch, outcomes, strict=True):
                results[i] = _result(requests[i].kr_id, outcome, when, requests[i].source)
            finished.put([i for i, _ in batch])

    # Lanes of different keys alternate in the queue, so every connection starts early.
    order = [key for round_ in _round_robin(lanes) for key in round_]
    workers = max(1, min(max_concurrency, len(order)))
    for key, count in lanes:
        # A server's slots are then asked for together: as many as can run at once.
        slots.expect(key, min(count, workers))
    if progress is not None and not order:
        progress(invalid, len(requests))  # nothing to fetch: no lane to wait for
    try:
        if order:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="okr-fetch") as ex:
                futures = [ex.submit(lane, key) for key in order]
                if progress is not None:
                    # Told once the lanes run: a progress hook that calls an API (Prefect's
                    # artifact) then no longer holds back the first query.
                    progress(invalid, len(requests))
                _follow_lanes(
                    len(futures),
                    finished,
                    results,
                    invalid,
                    len(requests),
                    progress,
                    progress_every,
                    on_results,
                )
                for future in futures:
                    future.result()
    finally:
        if own_pool:
            sources.close()
    if progress is not None:
        progress(len(requests), len(requests))
    missing = [requests[i].kr_ref for i, r in enumerate(results) if r is None]
    if missing:  # every lane drains its queue, so this is a bug, not a source failure
        raise RuntimeError(f"no result for {', '.join(missing[:5])}")
    return results  # type: ignore[return-value]


def _release_session(source: BaseSource[Any], key: str) -> None:
    try:
        source.release_session(key)
    except Exception:  # noqa: BLE001 - the source's close() at the end of the run closes it
        return


def _fetch_paced(
    source: BaseSource[Any],
    items: list[tuple[BaseSourceConfig, SourceContext]],
    pacer: Pacer | None,
) -> list[Decimal | Exception | None]:
    """One batch, paced by the slot's share of the rate when the connection has one."""
    if pacer is None:
        return source.fetch_many(items)
    if isinstance(source, ClientSource):
        # HTTP sources pace each request they send, retries included.
        with paced(pacer.request):
            return source.fetch_many(items)
    # Others (SQL) are paced per batch: a place in the window for each of its queries.
    with pacer.request(len(items)):
        return source.fetch_many(items)


def _follow_lanes(
    lanes: int,
    finished: queue.SimpleQueue[list[int] | None],
    results: Sequence[FetchResult | None],
    done: int,
    total: int,
    progress: Progress | None,
    every: float,
    on_results: ResultsHook | None,
) -> None:
    # The caller's thread waits here rather than in a worker: a driver's hook (Prefect's
    # client, the run's recorder and its store) may rely on the caller's context, and the
    # progress calls are throttled by the wait. ``done`` KRs were told already.
    told = done
    next_count = time.monotonic() + every
    ended = 0
    while ended < lanes:
        try:
            batch = finished.get(timeout=max(0.0, next_count - time.monotonic()))
        except queue.Empty:
            batch = []
        if batch is None:
            ended += 1
        elif batch:
            done += len(batch)
            if on_results is not None:
                on_results([result for i in batch if (result := results[i]) is not None])
        if time.monotonic() < next_count:
            continue
        # The next wait is a whole period again, with or without a count to tell.
        next_count = time.monotonic() + every
        if progress is not None and ended < lanes and done != told:
            progress(done, total)
            told = done


def _round_robin(lanes: Sequence[tuple[str, int]]) -> list[list[str]]:
    rounds: list[list[str]] = []
    for key, count in lanes:
        for n in range(count):
            if len(rounds) <= n:
                rounds.append([])
            rounds[n].append(key)
    return rounds
