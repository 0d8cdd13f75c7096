"""The concurrent fetcher: order, isolation of failures, and the per-connection bound."""

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
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError
from okr_pipeline.okr_core.settings import ConnectionSettings
from okr_pipeline.run import fetch
from okr_pipeline.run.fetch import FetchRequest, fetch_all

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


class FakeConfig(BaseSourceConfig):
    type: Literal["fake"] = "fake"
    connection: str
    behaviour: str = "value"

    def concurrency_key(self) -> str:
        return f"fake:{self.connection}"


class FakeSource(BaseSource[FakeConfig]):
    """Records how many fetches ran at once per connection."""

    type_name = "fake"
    config_model = FakeConfig
    running: ClassVar[dict[str, int]] = {}
    peak: ClassVar[dict[str, int]] = {}
    lock = threading.Lock()
    closed = 0

    def fetch(self, config: FakeConfig, ctx: SourceContext) -> Decimal | None:
        with self.lock:
            n = self.running[config.connection] = self.running.get(config.connection, 0) + 1
            self.peak[config.connection] = max(self.peak.get(config.connection, 0), n)
        try:
            time.sleep(0.01)
            if config.behaviour == "fatal":
                raise FatalSourceError(f"{ctx.kr_ref}: bad query")
            if config.behaviour == "retriable":
                raise RetriableSourceError(f"{ctx.kr_ref}: timed out")
            if config.behaviour == "bug":
                raise ZeroDivisionError("division by zero")
            if config.behaviour == "none":
                return None
            return Decimal(ctx.kr_ref.rsplit("-", 1)[1])
        finally:
            with self.lock:
                self.running[config.connection] -= 1

    def close(self) -> None:
        FakeSource.closed += 1


@pytest.fixture(autouse=True)
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeSource.running, FakeSource.peak, FakeSource.closed = {}, {}, 0
    monkeypatch.setattr(fetch, "get_source_class", lambda name: FakeSource)
    monkeypatch.setattr(fetch, "parse_source_config", lambda raw: FakeConfig(**raw))


def _request(i: int, connection: str = "a", behaviour: str = "value") -> FetchRequest:
    source: dict[str, Any] = {"type": "fake", "connection": connection, "behaviour": behaviour}
    return FetchRequest(i, f"obj/kr-{i}", source, NOW, NOW, NOW)


def _env(**limits: int) -> SourceEnvironment:
    return SourceEnvironment(
        connections={
            name: ConnectionSettings(url="sqlite://", max_concurrency=limit)
            for name, limit in limits.items()
        }
    )


def test_results_keep_request_order_and_values() -> None:
    results = fetch_all(
        [_request(i) for i in range(20)], _env(a=4), max_concurrency=8, clock=lambda: NOW
    )
    assert [r.kr_id for r in results] == list(range(20))
    assert [r.value for r in results] == [Decimal(i) for i in range(20)]
    assert all(r.ok and r.measured_at == NOW for r in results)


def test_one_failure_never_stops_the_others() -> None:
    requests = [
        _request(0),
        _request(1, behaviour="fatal"),
        _request(2, behaviour="retriable"),
        _request(3, behaviour="bug"),
        _request(4, behaviour="none"),
        _request(5),
    ]
    results = fetch_all(requests, _env(a=2), max_concurrency=4, clock=lambda: NOW)
    assert [(r.ok, r.error_kind) for r in results] == [
        (True, None),
        (False, "fatal"),
        (False, "retriable"),
        (False, "internal"),
        (True, None),
        (True, None),
    ]
    assert "bad query" in (results[1].error or "")
    assert "ZeroDivisionError" in (results[3].error or "")
    assert results[4].value is None and results[4].ok  # no data is not an error
    assert results[5].value == Decimal(5)


def test_each_connection_is_bounded_by_its_own_limit() -> None:
    requests = [_request(i, "slow") for i in range(24)] + [_request(i, "fast") for i in range(24)]
    fetch_all(requests, _env(slow=2, fast=6), max_concurrency=16, clock=lambda: NOW)
    assert FakeSource.peak["slow"] == 2
    assert 2 < FakeSource.peak["fast"] <= 6


def test_global_bound_caps_all_connections() -> None:
    requests = [_request(i, "x") for i in range(30)]
    fetch_all(requests, _env(x=50), max_concurrency=3, clock=lambda: NOW)
    assert FakeSource.peak["x"] == 3


def test_invalid_stored_source_fails_only_that_kr(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(raw: dict[str, Any]) -> FakeConfig:
        if raw.get("connection") == "broken":
            raise ValueError("unknown key 'qurey'")
        return FakeConfig(**raw)

    monkeypatch.setattr(fetch, "parse_source_config", parse)
    results = fetch_all(
        [_request(1), _request(2, "broken")], _env(a=1), max_concurrency=2, clock=lambda: NOW
    )
    assert results[0].value == Decimal(1)
    assert results[1].error_kind == "config" and "qurey" in (results[1].error or "")


def test_sources_are_closed_after_the_run() -> None:
    fetch_all([_request(1)], _env(a=1), max_concurrency=1, clock=lambda: NOW)
    assert FakeSource.closed == 1


class BatchingSource(FakeSource):
    """A source that takes batches, recording their sizes and keys."""

    max_batch = 10
    batches: ClassVar[list[tuple[str, int]]] = []

    def fetch_many(
        self, items: Sequence[tuple[FakeConfig, SourceContext]]
    ) -> list[Decimal | Exception | None]:
        with self.lock:
            BatchingSource.batches.append((items[0][0].connection, len(items)))
        assert len({config.connection for config, _ in items}) == 1  # one connection a batch
        return super().fetch_many(items)


def test_batches_never_exceed_max_batch_and_stay_on_one_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    BatchingSource.batches = []
    monkeypatch.setattr(fetch, "get_source_class", lambda name: BatchingSource)
    requests = [_request(i, "a") for i in range(200)] + [_request(i, "b") for i in range(200, 205)]
    results = fetch_all(requests, _env(a=2, b=2), max_concurrency=4, clock=lambda: NOW)
    assert [r.value for r in results] == [Decimal(i) for i in range(205)]
    sizes = {key: [n for k, n in BatchingSource.batches if k == key] for key in ("a", "b")}
    assert max(sizes["a"]) == 10 and sum(sizes["a"]) == 200
    # Few KRs on a connection: small batches, so that its lanes still share the work.
    assert sum(sizes["b"]) == 5 and max(sizes["b"]) == 1
    assert FakeSource.peak["a"] <= 2 and FakeSource.peak["b"] <= 2


def test_a_crashing_batch_fails_only_its_krs(monkeypatch: pytest.MonkeyPatch) -> None:
    class Crashing(BatchingSource):
        def fetch_many(
            self, items: Sequence[tuple[FakeConfig, SourceContext]]
        ) -> list[Decimal | Exception | None]:
            if items[0][0].connection == "bad":
                raise RuntimeError("connector bug")
            return super().fetch_many(items)

    monkeypatch.setattr(fetch, "get_source_class", lambda name: Crashing)
    results = fetch_all(
        [_request(1, "bad"), _request(2, "good")],
        _env(bad=1, good=1),
        max_concurrency=2,
        clock=lambda: NOW,
    )
    assert results[0].error_kind == "internal" and "connector bug" in (results[0].error or "")
    assert results[1].value == Decimal(2)


def test_stored_http_source_with_a_bad_host_part_fails_only_that_kr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stored before validation refused it: a password with an unescaped '/' once made the
    # concurrency key raise out of the whole fetch, showing the password's start.
    from okr_pipeline.connectors.registry import parse_source_config

    monkeypatch.setattr(fetch, "parse_source_config", parse_source_config)
    bad = {"type": "http", "url": "http://bob:p/w-secret@host/x", "value_path": "$.v"}
    results = fetch_all(
        [FetchRequest(1, "o/k", bad, NOW, NOW, NOW)], _env(), max_concurrency=2, clock=lambda: NOW
    )
    assert results[0].error_kind == "config" and "percent-encoded" in (results[0].error or "")
    assert "w-secret" not in (results[0].error or "")
