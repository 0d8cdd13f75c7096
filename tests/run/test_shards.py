"""Sharded runs without Prefect: where each KR goes, one shard's work, and the whole run.

The shards run in this process (``run_jobs_inline`` or a test's own driver); the Prefect
side, flow runs on workers and a killed one, is ``tests/flows/test_shards.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.records import StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.shards import (
    ShardJob,
    assign_shards,
    run_jobs_inline,
    run_shard,
    shard_jobs,
    stable_hash,
)
from okr_pipeline.run.update import RunRequest, Steps, run_update
from tests.run.test_select import kr

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)


def many(count: int, connection: str, start: int = 0) -> list[StoredKeyResult]:
    return [
        kr(
            f"obj-{connection}",
            f"kr-{i}",
            start + i,
            source={"type": "sql", "connection": connection},
        )
        for i in range(count)
    ]


def test_one_shard_holds_everything() -> None:
    krs = many(10, "warehouse")
    assert set(assign_shards(krs, 1).values()) == {0}


def test_a_kr_keeps_its_shard_whatever_the_run_measures() -> None:
    active = many(500, "warehouse") + many(20, "crm", start=1000)
    everything = assign_shards(active, 4)
    some = active[::7]
    assert assign_shards(some, 4, active) == {k.kr_id: everything[k.kr_id] for k in some}
    assert assign_shards(list(reversed(active)), 4) == everything
    assert set(everything.values()) <= set(range(4))


def test_a_big_connection_is_spread_and_a_small_one_kept_together() -> None:
    active = many(4000, "warehouse") + many(30, "crm", start=10_000)
    placed = assign_shards(active, 4)
    warehouse = Counter(placed[k.kr_id] for k in active if k.source["connection"] == "warehouse")
    crm = {placed[k.kr_id] for k in active if k.source["connection"] == "crm"}
    assert sorted(warehouse) == [0, 1, 2, 3]
    assert min(warehouse.values()) > 4000 / 4 * 0.85  # a hash spreads them evenly
    assert len(crm) == 1  # one shard opens connections to the small one


def test_the_hash_is_not_pythons_salted_one() -> None:
    code = (
        "import json; from okr_pipeline.run.shards import stable_hash;"
        "print(json.dumps([stable_hash(f'o/kr-{i}') for i in range(50)]))"
    )
    seen = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code],
                env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for seed in ("1", "2")
    ]
    assert seen[0] == seen[1] == [stable_hash(f"o/kr-{i}") for i in range(50)]


def test_jobs_carry_every_kr_once() -> None:
    active = many(300, "warehouse")
    jobs = shard_jobs(active, active, count=3, project_dir=".", run_id=7, as_of=T1)
    ids = [kr_id for job in jobs for kr_id in job.kr_ids]
    assert sorted(ids) == sorted(k.kr_id for k in active)
    assert [job.index for job in jobs] == [0, 1, 2]
    params = jobs[1].parameters()
    assert params["run_id"] == 7 and params["shard"] == 1 and params["shards"] == 3
    assert datetime.fromisoformat(params["as_of"]) == T1
    json.dumps(params)  # a flow run's parameters are JSON


# -- whole runs on the demo project --------------------------------------------------------


def _measurements(project: Path, as_of: datetime) -> list[tuple[int, int]]:
    """``(kr_id, how many current measurements)`` at ``as_of``; none ever superseded."""
    store = Store.open(f"sqlite:///{project / '.okr' / 'okr.db'}")
    try:
        ids = [k.kr_id for k in store.active_key_results(as_of)]
        counts = Counter(m.kr_id for m in store.measurements(ids, at=as_of))
        with store.engine.connect() as conn:
            superseded = conn.execute(sa.text("SELECT count(*) FROM superseded_measurements"))
            assert superseded.scalar_one() == 0, "a measurement was stored twice"
    finally:
        store.close()
    return sorted(counts.items())


def _run(project: Path, at: datetime, **changes: object) -> object:
    request = replace(RunRequest(project_dir=project, all_krs=True, as_of=at), **changes)
    return run_update(request, steps=Steps(run_shards=run_jobs_inline), clock=lambda: at)


def test_a_sharded_run_stores_and_scores_what_an_unsplit_one_would(demo_project: Path) -> None:
    _run(demo_project, T0)  # history, and the definitions synced
    unsplit = _run(demo_project, T1, dry_run=True, shards=3)  # a dry run is never split
    split = _run(demo_project, T1, shards=3)
    assert split.measured == unsplit.measured > 5  # type: ignore[attr-defined]
    assert split.rows == unsplit.rows  # type: ignore[attr-defined]
    assert split.statuses == unsplit.statuses  # type: ignore[attr-defined]
    stored = _measurements(demo_project, T1)
    assert all(n == 1 for _, n in stored)
    store = Store.open(f"sqlite:///{demo_project / '.okr' / 'okr.db'}")
    try:
        latest = store.runs(1)[0]
        assert latest.id == split.run_id and latest.status == "completed"  # type: ignore[attr-defined]
    finally:
        store.close()


def test_a_shard_started_again_stores_only_what_is_missing(demo_project: Path) -> None:
    """The first attempt stored its KRs and died before telling: the second skips them."""
    _run(demo_project, T0)
    attempts: list[Counter[str]] = []

    def crash_after_storing(jobs: Sequence[ShardJob], settings: Settings) -> dict[int, str]:
        for job in jobs:
            attempts.append(run_shard(job, settings=settings, clock=lambda: T1))
        for job in jobs:  # started again, as the Prefect driver does after a crash
            attempts.append(run_shard(job, settings=settings, clock=lambda: T1))
        return {}

    request = RunRequest(project_dir=demo_project, all_krs=True, as_of=T1, shards=2)
    summary = run_update(request, steps=Steps(run_shards=crash_after_storing), clock=lambda: T1)
    first, second = attempts[: len(attempts) // 2], attempts[len(attempts) // 2 :]
    assert sum(c["skipped"] for c in first) == 0
    assert [c["skipped"] for c in second] == [sum(c.values()) for c in first]
    assert all(set(c) == {"skipped"} for c in second)
    assert summary.errors == 0
    assert all(n == 1 for _, n in _measurements(demo_project, T1))


def test_a_shard_that_never_ran_is_reported_and_its_krs_fail(demo_project: Path) -> None:
    _run(demo_project, T0)

    def lose_the_last(jobs: Sequence[ShardJob], settings: Settings) -> dict[int, str]:
        *kept, lost = jobs
        assert run_jobs_inline(kept, settings) == {}
        return {lost.index: "ended Crashed (flow run 'x'), 2 attempts"}

    request = RunRequest(project_dir=demo_project, all_krs=True, as_of=T1, shards=2)
    summary = run_update(request, steps=Steps(run_shards=lose_the_last), clock=lambda: T1)
    assert summary.errors > 0
    assert all("not measured: shard 2 of 2 ended Crashed" in line for _, line in summary.failed)
    store = Store.open(f"sqlite:///{demo_project / '.okr' / 'okr.db'}")
    try:
        assert store.runs(1)[0].status == "partial"
    finally:
        store.close()
    # Every KR fetched has its one measurement at T1: a value, or the error naming the shard.
    stored = dict(_measurements(demo_project, T1))
    store = Store.open(f"sqlite:///{demo_project / '.okr' / 'okr.db'}")
    try:
        fetched = [k for k in store.active_key_results(T1) if k.source["type"] != "manual"]
    finally:
        store.close()
    assert set(stored) == {k.kr_id for k in fetched} and set(stored.values()) == {1}


@pytest.mark.parametrize("count", [2, 5])
def test_shards_never_overlap(count: int) -> None:
    active = many(200, "a") + many(50, "b", start=500) + many(3, "c", start=900)
    jobs = shard_jobs(active, active, count=count, project_dir=".", run_id=1, as_of=T1)
    seen = Counter(kr_id for job in jobs for kr_id in job.kr_ids)
    assert set(seen.values()) == {1} and len(seen) == len(active)
