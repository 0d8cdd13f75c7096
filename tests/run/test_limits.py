"""The local connection limits: the rate's split, the pacer (on a fake clock) and the slots."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import pytest

from okr_pipeline.connectors.base import (
    BaseSource,
    BaseSourceConfig,
    SourceContext,
    SourceEnvironment,
)
from okr_pipeline.okr_core.settings import ConnectionSettings
from okr_pipeline.run import fetch
from okr_pipeline.run.fetch import FetchRequest, fetch_all
from okr_pipeline.run.limits import (
    DEFAULT_KEY_CONCURRENCY,
    WINDOW_MARGIN_SECONDS,
    KeyBounds,
    LocalLimits,
    Pacer,
    key_bounds,
    share_rate,
)

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


class FakeClock:
    """Monotonic seconds that move only when something sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


def _max_in_window(times: Sequence[float], window: float) -> int:
    """The most of ``times`` inside any half-open window of ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, sum(1 for t in ordered[i:] if t < start + window))
    return best


@pytest.mark.parametrize(
    ("max_concurrency", "rate", "expected"),
    [
        (4, 20, (4, 5, 1.0)),  # the test quota: 4 slots of 5 a second
        (4, 100, (4, 25, 1.0)),
        (4, 10, (2, 5, 1.0)),  # 4 slots of 2 would allow 8: two slots of 5 allow 10
        (4, 3, (3, 1, 1.0)),  # fewer slots than the bound: one request each
        (8, 20.5, (5, 4, 1.0)),  # 20 in any second at most, the most slots that reach it
        (4, 1, (1, 1, 1.0)),
        (4, 0.5, (1, 1, 2.0)),  # one request every two seconds
    ],
)
def test_share_rate(max_concurrency: int, rate: float, expected: tuple[int, int, float]) -> None:
    slots, per_slot, window = share_rate(max_concurrency, rate)
    assert (slots, per_slot, window) == expected
    assert slots <= max_concurrency
    assert slots * per_slot / window <= rate  # the shares never add up to more


def test_key_bounds_from_the_settings() -> None:
    connections = {
        "warehouse": ConnectionSettings(url="sqlite://", max_concurrency=6),
        "api": ConnectionSettings(
            url="http://x.invalid", max_concurrency=4, rate_limit_per_second=20
        ),
    }
    assert key_bounds("sql:warehouse", connections) == KeyBounds(6)
    assert key_bounds("http:api", connections) == KeyBounds(4, 5, 1.0)
    assert key_bounds("http:example.com:8080", connections) == KeyBounds(DEFAULT_KEY_CONCURRENCY)
    assert not KeyBounds(6).rated and KeyBounds(4, 5).rated


def test_pacer_lets_per_window_through_then_waits_for_the_oldest_answer() -> None:
    clock = FakeClock()
    pacer = Pacer(5, 1.0, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    for _ in range(5):
        with pacer.request():
            sent.append(clock.now)
            clock.now += 0.01  # each answer takes 10 ms
    assert clock.slept == []  # five fit in the first window
    with pacer.request():
        sent.append(clock.now)
    # The sixth waits until the first was answered a window (and the margin) ago.
    assert sent[5] == pytest.approx(sent[0] + 0.01 + 1.0 + WINDOW_MARGIN_SECONDS)


def test_pacer_holds_the_bound_however_long_answers_take() -> None:
    clock = FakeClock()
    pacer = Pacer(5, 1.0, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    answered: list[float] = []
    for i in range(200):
        with pacer.request():
            sent.append(clock.now)
            clock.now += (i * 37 % 11) / 100  # answers take 0 to 100 ms
            answered.append(clock.now)
    # The server may see a request at any time between its sending and its answer: even
    # when each is counted at the worst of those moments, no second holds more than five.
    assert _max_in_window(sent, 1.0) <= 5
    assert _max_in_window(answered, 1.0) <= 5
    worst = [a if i % 2 else s for i, (s, a) in enumerate(zip(sent, answered, strict=True))]
    assert _max_in_window(worst, 1.0) <= 5
    # ... and it is not slower than it must be: 200 requests in about 40 windows.
    assert clock.now - 100.0 < 40 * (1.0 + WINDOW_MARGIN_SECONDS + 0.1) + 1


def test_pacer_counts_a_batch_as_its_queries() -> None:
    clock = FakeClock()
    pacer = Pacer(25, 1.0, clock=clock, sleep=clock.sleep)
    with pacer.request(20):
        pass
    start = clock.now
    with pacer.request(10):  # 30 would not fit in one window
        assert clock.now == pytest.approx(start + 1.0 + WINDOW_MARGIN_SECONDS)
    with pacer.request(50):  # more than a window holds: it waits for an empty window
        pass


def test_pacer_drain_waits_until_its_window_is_empty() -> None:
    clock = FakeClock()
    pacer = Pacer(5, 1.0, clock=clock, sleep=clock.sleep)
    with pacer.request():
        clock.now += 0.2
    answered = clock.now
    pacer.drain()
    assert clock.now == pytest.approx(answered + 1.0 + WINDOW_MARGIN_SECONDS)
    pacer.drain()  # nothing left: returns at once
    assert clock.now == pytest.approx(answered + 1.0 + WINDOW_MARGIN_SECONDS)


def test_pacer_says_when_its_window_clears() -> None:
    clock = FakeClock()
    pacer = Pacer(5, 1.0, clock=clock, sleep=clock.sleep)
    assert pacer.clears_in() == 0.0
    with pacer.request():
        pass
    clock.now += 0.25
    assert pacer.clears_in() == pytest.approx(0.75 + WINDOW_MARGIN_SECONDS)
    clock.now += 1.0
    assert pacer.clears_in() == 0.0


def test_a_pacer_needs_a_window() -> None:
    with pytest.raises(ValueError):
        Pacer(0, 1.0)


def test_local_slots_bound_every_holder_in_the_process() -> None:
    connections = {"db": ConnectionSettings(url="sqlite://", max_concurrency=3)}
    held = [0]
    peak = [0]
    lock = threading.Lock()

    def hold() -> None:
        # A LocalLimits of its own, as each run of the process makes one.
        with LocalLimits(connections).slot("sql:db"):
            with lock:
                held[0] += 1
                peak[0] = max(peak[0], held[0])
            time.sleep(0.02)
            with lock:
                held[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 3


def test_a_local_slot_keeps_its_pacer_from_holder_to_holder() -> None:
    clock = FakeClock()
    connections = {
        "api": ConnectionSettings(
            url="http://x.invalid", max_concurrency=1, rate_limit_per_second=2
        )
    }
    with LocalLimits(connections, clock=clock).slot("http:api") as first:
        assert first is not None
        with first.request(2):
            pass
    with LocalLimits(connections, clock=clock).slot("http:api") as second:
        # The next holder continues the window: the two requests already sent count.
        assert second is first
    with LocalLimits(connections).slot("sql:none") as unrated:
        assert unrated is None


# The runner: slots, sessions and pacing through fetch_all.


class FakeConfig(BaseSourceConfig):
    type: Literal["fake"] = "fake"
    connection: str

    def concurrency_key(self) -> str:
        return f"fake:{self.connection}"


class SessionSource(BaseSource[FakeConfig]):
    """Counts sessions as a pool would: one per running fetch, kept idle after it."""

    type_name = "fake"
    config_model = FakeConfig
    max_batch = 50
    lock = threading.Lock()
    running: ClassVar[int] = 0
    open_sessions: ClassVar[int] = 0
    idle: ClassVar[int] = 0
    peak_open: ClassVar[int] = 0
    released: ClassVar[list[str]] = []
    batch_starts: ClassVar[list[tuple[float, int]]] = []

    def fetch_many(
        self, items: Sequence[tuple[FakeConfig, SourceContext]]
    ) -> list[Decimal | Exception | None]:
        cls = SessionSource
        with cls.lock:
            cls.batch_starts.append((time.monotonic(), len(items)))
            if cls.idle:
                cls.idle -= 1
            else:
                cls.open_sessions += 1
                cls.peak_open = max(cls.peak_open, cls.open_sessions)
        time.sleep(0.005)
        with cls.lock:
            cls.idle += 1
        return [Decimal(1)] * len(items)

    def fetch(self, config: FakeConfig, ctx: SourceContext) -> Decimal | None:
        raise AssertionError("fetch_many is used")

    def release_session(self, key: str) -> None:
        cls = SessionSource
        with cls.lock:
            cls.released.append(key)
            if cls.idle:
                cls.idle -= 1
                cls.open_sessions -= 1


@pytest.fixture
def session_source(monkeypatch: pytest.MonkeyPatch) -> type[SessionSource]:
    SessionSource.open_sessions = SessionSource.idle = SessionSource.peak_open = 0
    SessionSource.released, SessionSource.batch_starts = [], []
    monkeypatch.setattr(fetch, "get_source_class", lambda name: SessionSource)
    monkeypatch.setattr(fetch, "parse_source_config", lambda raw: FakeConfig(**raw))
    return SessionSource


def _requests(count: int, connection: str) -> list[FetchRequest]:
    source: dict[str, Any] = {"type": "fake", "connection": connection}
    return [FetchRequest(i, f"o/kr-{i}", source, NOW, NOW, NOW) for i in range(count)]


def test_two_runs_in_one_process_share_the_bound_and_leave_no_session_open(
    session_source: type[SessionSource],
) -> None:
    env = SourceEnvironment(
        connections={"db": ConnectionSettings(url="sqlite://", max_concurrency=3)}
    )

    def run() -> None:
        results = fetch_all(_requests(300, "db"), env, max_concurrency=8, clock=lambda: NOW)
        assert all(r.ok for r in results)

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    assert session_source.peak_open <= 3  # two runs, one bound of 3 sessions
    assert session_source.open_sessions == 0  # every lane closed what it left idle
    assert set(session_source.released) == {"fake:db"}


def test_a_rated_connection_batches_no_more_than_a_slot_may_send(
    session_source: type[SessionSource],
) -> None:
    env = SourceEnvironment(
        connections={
            "db": ConnectionSettings(url="sqlite://", max_concurrency=2, rate_limit_per_second=40)
        }
    )
    results = fetch_all(_requests(60, "db"), env, max_concurrency=4, clock=lambda: NOW)
    assert all(r.ok for r in results)
    sizes = [n for _, n in session_source.batch_starts]
    assert max(sizes) <= 20 and sum(sizes) == 60  # 2 slots of 20 queries a second
    # 60 queries at 40 a second: the last batches wait for the window to move on.
    starts = [t for t, _ in session_source.batch_starts]
    assert max(starts) - min(starts) >= 1.0
