"""Sharded runs, Prefect-free: which shard a KR belongs to, one shard's work, and the whole.

A run split into shards (``[shards] count`` in okr.toml) measures its KRs in several
processes, usually on several machines: the parent run chooses the KRs, starts the run
record and hands each shard its KR ids (:class:`ShardJob`); each shard fetches, scores and
stores its KRs under the parent's run (:func:`run_shard`); the parent then reads what the
shards stored, and does what needs the whole picture itself: manual and formula KRs (a
formula reads other KRs' values), alerts, the summary (:func:`measure_in_shards`).

How the jobs run is the caller's: the Prefect layer starts one flow run per shard on a work
pool (``flows/shards.py``); :func:`run_jobs_inline` runs them one after the other in this
process, for tests and for drivers without Prefect.

A KR's shard depends only on its source's connection and its ``objective/kr`` (a CRC-32,
never Python's salted ``hash``): it stays in its shard from run to run while the shard
count and the set of active KRs stay the same. A connection with few KRs stays in one
shard (one process opens connections to it); a big one is spread over as many shards as its
share of the KRs calls for (:func:`assign_shards`).
"""

from __future__ import annotations

import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from okr_pipeline.okr_core.settings import Settings, load_settings
from okr_pipeline.okr_store.models import Evaluation, Measurement
from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.definitions import source_environment
from okr_pipeline.run.evaluate import outcome_of
from okr_pipeline.run.fetch import FetchResult, SourcePool
from okr_pipeline.run.formulas import compute_formulas, is_formula
from okr_pipeline.run.manual import is_manual, manual_results
from okr_pipeline.run.record import open_store
from okr_pipeline.run.recorder import RunRecorder
from okr_pipeline.run.steps import needs_baseline

if TYPE_CHECKING:
    # Types only: run/update.py imports this module, and these from there.
    from okr_pipeline.run.update import Steps

__all__ = [
    "ShardJob",
    "assign_shards",
    "group_of",
    "measure_in_shards",
    "run_jobs_inline",
    "run_shard",
    "shard_jobs",
    "stable_hash",
]

#: What a driver of shard jobs returns: why each shard that did not finish failed, by index.
ShardFailures = Mapping[int, str]
RunJobs = Callable[[Sequence["ShardJob"], Settings], ShardFailures]


def stable_hash(text: str) -> int:
    """A hash of ``text`` that is the same in every process and on every machine."""
    return zlib.crc32(text.encode("utf-8"))


def group_of(kr: StoredKeyResult) -> str:
    """What a KR is sharded by first: its source's connection, or its type without one."""
    connection = kr.source.get("connection")
    return f"connection:{connection}" if connection else f"type:{kr.source.get('type', '')}"


def assign_shards(
    krs: Sequence[StoredKeyResult], count: int, active: Sequence[StoredKeyResult] | None = None
) -> dict[int, int]:
    """Each KR's shard, ``0 <= shard < count``, by KR id.

    A group (:func:`group_of`) spans as many consecutive shards as its share of the active
    KRs calls for (at least one), starting at a shard chosen by the group's hash; within
    them a KR's place is chosen by the hash of its ``objective/kr``. Only the active KRs'
    groups and refs count, never which KRs a run happens to measure, so a KR is in the
    same shard in every run while the definitions and ``count`` are unchanged.

    Args:
        krs: The KRs to place.
        count: How many shards (1: all in shard 0).
        active: Every active KR, which sizes the groups (default: ``krs``).
    """
    if count <= 1:
        return {kr.kr_id: 0 for kr in krs}
    sizes = Counter(group_of(kr) for kr in (krs if active is None else active))
    total = sum(sizes.values()) or 1
    placed: dict[int, int] = {}
    for kr in krs:
        group = group_of(kr)
        span = min(count, max(1, math.ceil(count * sizes.get(group, 1) / total)))
        start = stable_hash(group) % count
        placed[kr.kr_id] = (start + stable_hash(kr.ref) % span) % count
    return placed


@dataclass(frozen=True)
class ShardJob:
    """One shard's share of a run: what its flow run receives as parameters.

    Attributes:
        project_dir: The project folder, as the parent run was given it.
        run_id: The parent's run in the store; the shard stores under it.
        as_of: The run's as-of (aware, UTC).
        index: The shard's index, from 0.
        count: How many shards the run has.
        kr_ids: The store ids of the KRs this shard measures.
    """

    project_dir: str
    run_id: int
    as_of: datetime
    index: int
    count: int
    kr_ids: tuple[int, ...]

    @property
    def name(self) -> str:
        """``shard 2 of 4``: how messages and flow run names call it."""
        return f"shard {self.index + 1} of {self.count}"

    def parameters(self) -> dict[str, Any]:
        """The shard flow's parameters (JSON-ready)."""
        return {
            "project_dir": self.project_dir,
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "shard": self.index,
            "shards": self.count,
            "kr_ids": list(self.kr_ids),
        }


def shard_jobs(
    krs: Sequence[StoredKeyResult],
    active: Sequence[StoredKeyResult],
    *,
    count: int,
    project_dir: str,
    run_id: int,
    as_of: datetime,
) -> list[ShardJob]:
    """The run's shard jobs, one per shard that has KRs, by index."""
    placed = assign_shards(krs, count, active)
    ids: dict[int, list[int]] = defaultdict(list)
    for kr in krs:
        ids[placed[kr.kr_id]].append(kr.kr_id)
    return [
        ShardJob(project_dir, run_id, as_of.astimezone(UTC), index, count, tuple(ids[index]))
        for index in sorted(ids)
    ]


# -- one shard -----------------------------------------------------------------------------


def stored_by_run(store: Store, run_id: int, as_of: datetime) -> set[int]:
    """The KRs that have a current measurement at ``as_of`` stored by run ``run_id``."""
    table = Measurement.__table__
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.kr_id).where(table.c.run_id == run_id, table.c.as_of == as_of)
        )
        return {kr_id for (kr_id,) in rows}


def run_shard(
    job: ShardJob,
    *,
    steps: Steps | None = None,
    settings: Settings | None = None,
    flow_run_id: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Counter[str]:
    """Measure, score and store one shard's KRs under the parent's run.

    KRs that this run has stored already are skipped: a shard started again after its
    first attempt died stores only what is missing, so nothing is measured twice.

    Args:
        job: The shard's share of the run.
        steps: The run's steps (baselines, fetch, evaluate and store); default plain calls.
        settings: The project's settings (default: loaded from ``job.project_dir``).
        flow_run_id: This shard's flow run, kept with spooled values if the store fails.
        clock: The current time (default: the system clock); stamps the measurements.

    Returns:
        The shard's KRs by outcome (``ok``, ``no_data``, ``error``), and ``skipped``.
    """
    from okr_pipeline.run.update import Steps, utcnow

    run = steps or Steps()
    settings = run.resolve_settings(settings or load_settings(Path(job.project_dir)))
    clock = clock or utcnow
    store = open_store(settings)
    try:
        # Only this shard's KRs are read: each of N shards reading them all cost N times.
        krs = store.active_key_results(job.as_of, kr_ids=job.kr_ids)
        done = stored_by_run(store, job.run_id, job.as_of)
        todo = [kr for kr in krs if kr.kr_id not in done]
        outcomes: Counter[str] = Counter(skipped=len(krs) - len(todo))
        if not todo:
            return outcomes
        with SourcePool(source_environment(settings)) as pool:
            now = clock()
            if any(needs_baseline(kr, now) for kr in todo):
                todo = run.baselines(todo, settings, store, pool, now, clock)
            with RunRecorder(
                store,
                settings,
                {kr.kr_id: kr for kr in todo},
                run_id=job.run_id,
                as_of=job.as_of,
                flow_run_id=flow_run_id,
            ) as recorder:
                # Scored and stored as they arrive; committed by the last step.
                results = run.fetch(todo, settings, job.as_of, pool, clock, on_results=recorder.add)
                pool.close()
                run.evaluate_and_store(
                    todo, results, store, settings, job.run_id, job.as_of, flow_run_id, recorder
                )
        outcomes.update(outcome_of(r) for r in results)
        return outcomes
    finally:
        store.close()


def run_jobs_inline(jobs: Sequence[ShardJob], settings: Settings) -> ShardFailures:
    """Run the shard jobs one after the other in this process (no Prefect, no workers)."""
    failures: dict[int, str] = {}
    for job in jobs:
        try:
            run_shard(job, settings=settings)
        except Exception as exc:  # noqa: BLE001 - the parent reports the shard failed
            failures[job.index] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    return failures


# -- the parent ----------------------------------------------------------------------------


def stored_outcome(
    store: Store, krs: Sequence[StoredKeyResult], run_id: int, as_of: datetime
) -> tuple[dict[int, FetchResult], dict[int, EvaluationRecord]]:
    """What the shards stored for ``krs`` in run ``run_id`` at ``as_of``, by KR id."""
    wanted = {kr.kr_id for kr in krs}
    measurements = Measurement.__table__
    evaluations = Evaluation.__table__
    results: dict[int, FetchResult] = {}
    scored: dict[int, EvaluationRecord] = {}
    # By the run (indexed), not by KR id: one query each rather than one per 1,000 KRs.
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                measurements.c.kr_id,
                measurements.c.measured_at,
                measurements.c.value,
                measurements.c.outcome,
                measurements.c.error_message,
                measurements.c.error_kind,
            ).where(measurements.c.run_id == run_id, measurements.c.as_of == as_of)
        )
        for kr_id, measured_at, value, outcome, error, kind in rows:
            if kr_id not in wanted:
                continue
            failed = outcome == "error"
            results[kr_id] = FetchResult(
                kr_id,
                measured_at,
                value=None if failed else value,
                error=(error or "failed") if failed else None,
                error_kind=kind if failed else None,
            )
        columns = [evaluations.c[name] for name in _EVALUATION_FIELDS]
        for row in conn.execute(
            sa.select(*columns).where(
                evaluations.c.run_id == run_id, evaluations.c.evaluated_at == as_of
            )
        ):
            if row.kr_id in wanted:
                scored[row.kr_id] = EvaluationRecord(**row._asdict())
    return results, scored


_EVALUATION_FIELDS = (
    "kr_id", "evaluated_at", "status", "value", "progress", "score", "expected_progress",
    "forecast_value", "forecast_score", "reason", "forecast_low", "forecast_high",
)  # fmt: skip


def _not_measured(kr: StoredKeyResult, when: datetime, why: str) -> FetchResult:
    return FetchResult(
        kr.kr_id, when, error=f"{kr.ref}: not measured: {why}", error_kind="retriable"
    )


def measure_in_shards(
    chosen: Sequence[StoredKeyResult],
    active: Sequence[StoredKeyResult],
    store: Store,
    settings: Settings,
    *,
    run_jobs: RunJobs,
    steps: Steps,
    count: int,
    project_dir: str,
    run_id: int,
    as_of: datetime,
    clock: Callable[[], datetime],
    flow_run_id: str | None,
) -> tuple[list[StoredKeyResult], list[FetchResult], list[EvaluationRecord]]:
    """The measuring part of a sharded run: shards first, then what needs them all.

    The KRs with a source to fetch go to the shards (``run_jobs`` runs them and waits);
    what they stored is read back. Manual KRs (their check-in in force) and formula KRs
    (computed from this run's values, as in a run that is not split) are measured here,
    and so are the KRs of a shard that failed for good: each gets an error naming the
    shard, so no KR silently keeps its old value.

    Returns:
        The KRs of ``chosen`` (with the auto baselines the shards measured), one result
        and one evaluation per KR, in its order.
    """
    remote = [kr for kr in chosen if not is_formula(kr.source) and not is_manual(kr.source)]
    jobs = shard_jobs(
        remote, active, count=count, project_dir=project_dir, run_id=run_id, as_of=as_of
    )
    failures = run_jobs(jobs, settings) if jobs else {}
    results, scored = stored_outcome(store, remote, run_id, as_of)
    shard_of = {kr_id: job for job in jobs for kr_id in job.kr_ids}
    lost: list[FetchResult] = []
    for kr in remote:
        if kr.kr_id not in results or kr.kr_id not in scored:
            job = shard_of[kr.kr_id]
            why = failures.get(job.index, "its shard finished without storing it")
            lost.append(_not_measured(kr, clock(), f"{job.name} {why}"))
    # Stored by a shard: measurement and evaluation go in one transaction, so both or none.
    local = [kr for kr in chosen if kr.kr_id not in results or kr.kr_id not in scored]
    fetched = [results[kr.kr_id] for kr in remote if kr.kr_id in results] + lost
    # Manual and formula KRs never need a fetch (nor an auto baseline: both are refused).
    fetched = manual_results(chosen, fetched, store, as_of, clock)
    everything = compute_formulas(chosen, fetched, active, store, as_of, clock)
    by_id = {r.kr_id: r for r in everything}
    if local:
        again = steps.evaluate_and_store(
            local, [by_id[kr.kr_id] for kr in local], store, settings, run_id, as_of, flow_run_id
        )
        scored.update({e.kr_id: e for e in again})
    # A shard measured the auto baselines of its KRs: the summary shows them as stored.
    if any(kr.baseline_auto and kr.baseline is None for kr in remote):
        # Only the baseline and target: the rest stays as the run read it (its last as-of
        # decides which KRs alert).
        fresh = {kr.kr_id: kr for kr in store.active_key_results(as_of)}
        chosen = [
            replace(
                kr, baseline=fresh[kr.kr_id].baseline, target_value=fresh[kr.kr_id].target_value
            )
            if kr.baseline_auto and kr.baseline is None and kr.kr_id in fresh
            else kr
            for kr in chosen
        ]
    return (
        list(chosen),
        [by_id[kr.kr_id] for kr in chosen],
        [scored[kr.kr_id] for kr in chosen],
    )


def shard_count(requested: int | None, settings: Settings) -> int:
    """The shards a run is split into: the run's own request, else the settings'."""
    return requested if requested is not None else settings.shards.count


def ids_of(krs: Iterable[StoredKeyResult]) -> list[int]:
    """The store ids of ``krs``, in order."""
    return [kr.kr_id for kr in krs]
