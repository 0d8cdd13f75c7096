"""The Prefect connection limits against a real Prefect server: the limit made from the
settings and resized with them, a run's lanes served from one lease, and a run that goes
on within its own bound when the Prefect API is not there."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from okr_pipeline.flows.limits import PrefectConnectionLimits, limit_name
from okr_pipeline.okr_core.settings import ConnectionSettings

URL = "postgresql+psycopg://reader@warehouse.invalid/analytics"  # never connected to


def _active(name: str) -> tuple[int, int]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    return limit.limit, limit.active_slots


def _given_back(name: str) -> tuple[int, int]:
    """The limit once its slots are back (a thread of their own gives them back)."""
    deadline = time.monotonic() + 30
    while _active(name)[1] and time.monotonic() < deadline:
        time.sleep(0.05)
    return _active(name)


def test_the_limit_follows_the_settings(prefect_harness: None) -> None:
    name = limit_name("sized", ConnectionSettings(url=URL))
    for size in (4, 2):
        settings = ConnectionSettings(url=URL, max_concurrency=size)
        with PrefectConnectionLimits({"sized": settings}).slot("sql:sized"):
            assert _active(name) == (size, 1)
        assert _given_back(name) == (size, 0)
    # A rate limit sizes it by the slots the rate is split into: 10/s over 2 slots of 5.
    rated = ConnectionSettings(url=URL, max_concurrency=4, rate_limit_per_second=10)
    with PrefectConnectionLimits({"sized": rated}).slot("sql:sized") as pacer:
        assert pacer is not None and pacer.per_window == 5
        assert _active(name) == (2, 1)


def test_a_runs_lanes_share_one_lease_and_give_it_back(prefect_harness: None) -> None:
    connections = {"grouped": ConnectionSettings(url=URL, max_concurrency=4)}
    name = limit_name("grouped", connections["grouped"])
    limits = PrefectConnectionLimits(connections)
    limits.expect("sql:grouped", 3)
    holding = threading.Barrier(4)
    leases: list[object] = []

    def lane() -> None:
        with limits.slot("sql:grouped"):
            leases.append(limits._groups.get("sql:grouped"))
            holding.wait(timeout=30)
            holding.wait(timeout=30)

    lanes = [threading.Thread(target=lane) for _ in range(3)]
    for thread in lanes:
        thread.start()
    holding.wait(timeout=30)  # all three hold their slot
    assert _active(name) == (4, 3)
    assert len({id(group) for group in leases}) == 1  # one lease for the three
    holding.wait(timeout=30)
    for thread in lanes:
        thread.join()
    assert _given_back(name) == (4, 0)


def _counting_reads(limits: PrefectConnectionLimits, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the limits ``limits`` reads from the server, as it reads them."""
    reads: list[str] = []
    read = limits._client.read_global_concurrency_limit_by_name

    def counted(name: str) -> Any:
        reads.append(name)
        return read(name)

    monkeypatch.setattr(limits._client, "read_global_concurrency_limit_by_name", counted)
    return reads


def _lanes(limits: PrefectConnectionLimits, key: str, count: int) -> list[threading.Thread]:
    """``count`` lanes of ``key`` started together, each holding its slot for 0.2 s."""
    limits.expect(key, count)

    def lane() -> None:
        with limits.slot(key):
            time.sleep(0.2)

    lanes = [threading.Thread(target=lane) for _ in range(count)]
    for thread in lanes:
        thread.start()
    return lanes


@pytest.mark.parametrize("fresh", [True, False])
def test_a_runs_group_is_taken_after_one_read_of_the_limit(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch, fresh: bool
) -> None:
    """The read that makes or resizes the limit tells how many slots are free."""
    from okr_pipeline.flows import limits as module

    if not fresh:  # the read is too old by the time the lanes ask: read again
        monkeypatch.setattr(module, "FRESH_SECONDS", -1.0)
    connections = {"read-once": ConnectionSettings(url=URL, max_concurrency=4)}
    name = limit_name("read-once", connections["read-once"])
    limits = PrefectConnectionLimits(connections)
    reads = _counting_reads(limits, monkeypatch)
    for thread in _lanes(limits, "sql:read-once", 3):
        thread.join(timeout=30)
    assert reads == [name] if fresh else reads == [name, name]
    assert _given_back(name) == (4, 0)


def test_slots_taken_since_the_read_still_bound_the_run(prefect_harness: None) -> None:
    """A read that is out of date asks for too many slots: the server refuses, and the
    lanes take one slot each as they free up, never more than the limit at once."""
    connections = {"raced": ConnectionSettings(url=URL, max_concurrency=4)}
    name = limit_name("raced", connections["raced"])
    late = PrefectConnectionLimits(connections)
    late._limit("sql:raced", late.bounds("sql:raced"))  # reads 4 free slots
    other = PrefectConnectionLimits(connections)  # another run takes 3 of them meanwhile
    others = _lanes(other, "sql:raced", 3)
    deadline = time.monotonic() + 30
    while _active(name)[1] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    seen: list[int] = []
    lanes = _lanes(late, "sql:raced", 3)
    while any(thread.is_alive() for thread in lanes + others):
        seen.append(_active(name)[1])
        time.sleep(0.02)
    assert seen and max(seen) <= 4, seen
    assert _given_back(name) == (4, 0)


def test_without_the_prefect_api_a_run_keeps_its_own_bound(
    prefect_harness: None, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from tests.ports import free_port

    dead = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    with temporary_settings(updates={PREFECT_API_URL: dead, PREFECT_CLIENT_MAX_RETRIES: 0}):
        client = get_client(sync_client=True)
        with client:
            limits = PrefectConnectionLimits(
                {"gone": ConnectionSettings(url=URL, max_concurrency=2)}, client=client
            )
            with (
                caplog.at_level(logging.WARNING, logger="okr_pipeline.flows.limits"),
                limits.slot("sql:gone") as pacer,
            ):
                assert pacer is None
    assert "'gone' is bounded in this process only" in caplog.text
    assert "SECRET" not in caplog.text
