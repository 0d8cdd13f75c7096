"""The fetcher's progress hook: throttled, told in the caller's thread, ends at (total, total)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import pytest

from okr_pipeline.connectors.base import (
    BaseSource,
    BaseSourceConfig,
    SourceContext,
    SourceEnvironment,
)
from okr_pipeline.run import fetch
from okr_pipeline.run.fetch import FetchRequest, fetch_all

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


class SlowConfig(BaseSourceConfig):
    type: Literal["slow"] = "slow"
    delay: float = 0.0
    bug: bool = False

    def concurrency_key(self) -> str:
        return "slow:db"


class SlowSource(BaseSource[SlowConfig]):
    type_name = "slow"
    config_model = SlowConfig
    max_batch = 1

    def fetch(self, config: SlowConfig, ctx: SourceContext) -> Decimal | None:
        time.sleep(config.delay)
        return Decimal(1)

    def fetch_many(self, items: Any) -> list[Decimal | Exception | None]:
        if any(config.bug for config, _ in items):
            raise RuntimeError("batch broke")
        return super().fetch_many(items)


@pytest.fixture(autouse=True)
def slow_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "get_source_class", lambda name: SlowSource)
    monkeypatch.setattr(fetch, "parse_source_config", lambda raw: SlowConfig(**raw))


def _requests(n: int, delay: float = 0.0) -> list[FetchRequest]:
    source = {"type": "slow", "delay": delay}
    return [FetchRequest(i, f"obj/kr-{i}", source, NOW, NOW, NOW) for i in range(n)]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.threads: set[int] = set()

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))
        self.threads.add(threading.get_ident())


def test_progress_is_told_in_the_callers_thread_and_ends_at_the_total() -> None:
    recorder = Recorder()
    fetch_all(
        _requests(40, delay=0.01),
        SourceEnvironment(),
        max_concurrency=2,
        clock=lambda: NOW,
        progress=recorder,
        progress_every=0.02,
    )
    assert recorder.threads == {threading.get_ident()}
    assert recorder.calls[0] == (0, 40) and recorder.calls[-1] == (40, 40)
    assert len(recorder.calls) >= 4, recorder.calls  # ~0.2 s of fetching, told every 0.02 s
    done = [d for d, _ in recorder.calls]
    assert done == sorted(done) and all(t == 40 for _, t in recorder.calls)
    # No call repeats the count before it (the last may: it is always made).
    assert len(set(done[:-1])) == len(done[:-1])


def test_ten_thousand_krs_are_told_a_handful_of_times() -> None:
    recorder = Recorder()
    started = time.perf_counter()
    fetch_all(
        _requests(10_000),
        SourceEnvironment(),
        max_concurrency=4,
        clock=lambda: NOW,
        progress=recorder,
    )
    elapsed = time.perf_counter() - started
    # One call before, at most one per second while fetching, one at the end.
    assert recorder.calls[0] == (0, 10_000)
    assert len(recorder.calls) <= elapsed + 3, (len(recorder.calls), elapsed)
    assert recorder.calls[-1] == (10_000, 10_000)


def test_no_progress_hook_changes_nothing() -> None:
    results = fetch_all(_requests(5), SourceEnvironment(), max_concurrency=2, clock=lambda: NOW)
    assert [r.value for r in results] == [Decimal(1)] * 5


def test_a_broken_batch_still_counts_as_done() -> None:
    recorder = Recorder()
    requests = [FetchRequest(0, "obj/kr-0", {"type": "slow", "bug": True}, NOW, NOW, NOW)]
    results = fetch_all(
        requests, SourceEnvironment(), max_concurrency=1, clock=lambda: NOW, progress=recorder
    )
    # A connector's exception fails its batch, not the run; the count still ends complete.
    assert results[0].error_kind == "internal"
    assert recorder.calls[-1] == (1, 1)


def test_the_first_count_does_not_hold_back_the_first_query() -> None:
    """A hook that calls an API (Prefect's artifact) is told while the lanes already run."""
    started = threading.Event()

    class Marking(SlowSource):
        def fetch(self, config: SlowConfig, ctx: SourceContext) -> Decimal | None:
            started.set()
            return super().fetch(config, ctx)

    calls: list[tuple[int, int, bool]] = []

    def slow_api(done: int, total: int) -> None:
        if not calls:
            started.wait(timeout=5)  # the first query goes out while this call is under way
        calls.append((done, total, started.is_set()))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fetch, "get_source_class", lambda name: Marking)
        fetch_all(
            [FetchRequest(i, f"obj/kr-{i}", {"type": "slow"}, NOW, NOW, NOW) for i in range(3)],
            SourceEnvironment(),
            max_concurrency=1,
            clock=lambda: NOW,
            progress=slow_api,
        )
    assert calls[0] == (0, 3, True)
    assert calls[-1] == (3, 3, True)


def test_with_every_source_invalid_the_count_is_still_told_from_the_start() -> None:
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fetch, "parse_source_config", lambda raw: SlowConfig(**raw))
        results = fetch_all(
            [FetchRequest(0, "obj/kr-0", {"type": "slow", "nope": 1}, NOW, NOW, NOW)],
            SourceEnvironment(),
            max_concurrency=1,
            clock=lambda: NOW,
            progress=recorder,
        )
    assert results[0].error_kind == "config"
    assert recorder.calls == [(1, 1), (1, 1)]


def test_each_result_is_handed_over_once_in_the_callers_thread_while_others_run() -> None:
    arrived: list[tuple[list[int], int, int]] = []
    threads: set[int] = set()
    requests = _requests(30, delay=0.01)
    requests.append(FetchRequest(30, "obj/kr-30", {"type": "slow", "nope": 1}, NOW, NOW, NOW))
    queried = [0]

    class Counting(SlowSource):
        def fetch(self, config: SlowConfig, ctx: SourceContext) -> Decimal | None:
            queried[0] += 1
            return super().fetch(config, ctx)

    def on_results(results: Any) -> None:
        threads.add(threading.get_ident())
        arrived.append(([r.kr_id for r in results], queried[0], len(results)))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fetch, "get_source_class", lambda name: Counting)
        results = fetch_all(
            requests,
            SourceEnvironment(),
            max_concurrency=2,
            clock=lambda: NOW,
            on_results=on_results,
        )
    handed = [kr_id for ids, _, _ in arrived for kr_id in ids]
    assert sorted(handed) == list(range(31))  # every result once
    assert arrived[0][0] == [30]  # the invalid source's result first, before any query
    assert threads == {threading.get_ident()}
    # Batches came while the lanes still had queries to run.
    assert arrived[1][1] < 30
    by_id = {r.kr_id: r for r in results}
    assert by_id[30].error_kind == "config" and by_id[0].value == Decimal(1)


def test_a_hook_that_fails_stops_the_fetch_with_its_error() -> None:
    def broken(results: Any) -> None:
        raise ValueError("the store went away")

    with pytest.raises(ValueError, match="the store went away"):
        fetch_all(
            _requests(6, delay=0.01),
            SourceEnvironment(),
            max_concurrency=2,
            clock=lambda: NOW,
            on_results=broken,
        )


def test_following_the_lanes_waits_instead_of_spinning(monkeypatch: pytest.MonkeyPatch) -> None:
    # Past the first period the caller's thread must still block between batches, with or
    # without a progress hook: a loop that polls spends the lanes' CPU (and GIL).
    clock_reads = [0]
    real = time.monotonic

    def counted() -> float:
        clock_reads[0] += 1
        return real()

    monkeypatch.setattr(fetch.time, "monotonic", counted)
    results = fetch_all(
        _requests(20, delay=0.02),  # about 0.4 s, eight periods
        SourceEnvironment(),
        max_concurrency=1,
        clock=lambda: NOW,
        progress_every=0.05,
        on_results=lambda batch: None,
    )
    assert len(results) == 20
    # A few reads per batch and per period; a polling loop makes tens of thousands.
    assert clock_reads[0] < 500, clock_reads[0]
