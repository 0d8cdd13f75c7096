"""Fetch the current value of many key results at once, with bounded concurrency.

A company has thousands of KRs, and a Prefect task run costs several milliseconds while an
indexed query costs about half of one, so the fetching is plain threads inside one task:
a global pool (``Settings.max_concurrency``) and, inside it, a semaphore per connection
(``ConnectionSettings.max_concurrency``) so that one slow database cannot take every worker
and no connection pool is asked for more connections than it has. Prefect's timeouts cannot
interrupt a blocking call in a worker thread, so every source sets its own network and
statement timeouts; here we only bound how many run at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.base import BaseSource, BaseSourceConfig, SourceContext, SourceEnvironment
from connectors.errors import RetriableSourceError, SourceError
from connectors.registry import get_source_class, parse_source_config

DEFAULT_KEY_CONCURRENCY = 4


@dataclass(frozen=True)
class FetchRequest:
    """One value to fetch: which KR, from which source, as of when."""

    kr_id: int
    kr_ref: str
    source: Mapping[str, Any]
    as_of: datetime
    cycle_start: datetime
    cycle_end: datetime


@dataclass(frozen=True)
class FetchResult:
    """What a source answered for one KR: a value, no data (``value is None``), or an error."""

    kr_id: int
    measured_at: datetime
    value: Decimal | None = None
    error: str | None = None
    error_kind: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the source answered (with a value or with no data)."""
        return self.error is None


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


def _key_limit(key: str, env: SourceEnvironment) -> int:
    # Keys look like "sql:warehouse" or "http:analytics"; a named connection sets its bound.
    _, _, name = key.partition(":")
    connection = env.connections.get(name)
    return connection.max_concurrency if connection else DEFAULT_KEY_CONCURRENCY


def fetch_all(
    requests: Sequence[FetchRequest],
    env: SourceEnvironment,
    *,
    max_concurrency: int,
    clock: Callable[[], datetime],
    pool: SourcePool | None = None,
) -> list[FetchResult]:
    """Fetch every request concurrently; one failure never stops the others.

    Args:
        requests: The KRs to fetch.
        env: Connections and secrets the sources may use.
        max_concurrency: Sources running at once, over all connections.
        clock: Returns the current time (aware UTC); stamps each measurement.
        pool: Source instances to reuse; a private one is opened and closed otherwise.

    Returns:
        One result per request, in the order of ``requests``.
    """
    own_pool = pool is None
    sources = pool or SourcePool(env)
    semaphores: dict[str, threading.BoundedSemaphore] = {}
    prepared: list[tuple[FetchRequest, BaseSourceConfig | None, str | None]] = []
    for request in requests:
        try:
            config = parse_source_config(request.source)
        except Exception as exc:  # noqa: BLE001 - a bad stored source fails that KR only
            prepared.append((request, None, f"invalid source: {exc}"))
            continue
        key = config.concurrency_key()
        if key not in semaphores:
            semaphores[key] = threading.BoundedSemaphore(_key_limit(key, env))
        prepared.append((request, config, key))

    def run(item: tuple[FetchRequest, BaseSourceConfig | None, str | None]) -> FetchResult:
        request, config, key_or_error = item
        if config is None:
            return FetchResult(
                request.kr_id, clock(), error=key_or_error, error_kind="config"
            )
        ctx = SourceContext(
            as_of=request.as_of,
            cycle_start=request.cycle_start,
            cycle_end=request.cycle_end,
            kr_ref=request.kr_ref,
        )
        assert key_or_error is not None
        with semaphores[key_or_error]:
            started = time.perf_counter()
            try:
                value = sources.get(config).fetch(config, ctx)
            except SourceError as exc:
                kind = "retriable" if isinstance(exc, RetriableSourceError) else "fatal"
                return FetchResult(
                    request.kr_id, clock(), error=str(exc), error_kind=kind,
                    seconds=time.perf_counter() - started,
                )
            except Exception as exc:  # noqa: BLE001 - a connector bug must not stop the run
                return FetchResult(
                    request.kr_id, clock(),
                    error=f"{type(exc).__name__} in {config.type} source: {exc}",
                    error_kind="internal", seconds=time.perf_counter() - started,
                )
            return FetchResult(
                request.kr_id, clock(), value=value, seconds=time.perf_counter() - started
            )

    try:
        if not prepared:
            return []
        workers = max(1, min(max_concurrency, len(prepared)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="okr-fetch") as ex:
            return list(ex.map(run, prepared))
    finally:
        if own_pool:
            sources.close()


def chunked(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Yield successive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
