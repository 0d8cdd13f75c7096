"""The steps of one run, as plain functions: load, measure baselines, fetch, evaluate and store.

The Prefect flow runs each as a task (``okr_pipeline.flows.update``); tests and other drivers
call them directly through :func:`okr_pipeline.run.update.run_update`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from okr_pipeline.connectors.registry import parse_source_config
from okr_pipeline.okr_core.definitions import resolve_target
from okr_pipeline.okr_core.loader import fingerprint
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.definitions import load_definitions, source_environment
from okr_pipeline.run.fetch import (
    FetchRequest,
    FetchResult,
    Progress,
    ResultsHook,
    SourcePool,
    fetch_all,
)
from okr_pipeline.run.formulas import is_formula
from okr_pipeline.run.limits import ConnectionLimits
from okr_pipeline.run.progress import fetch_counts
from okr_pipeline.run.recorder import RunRecorder, store_results


def load_key_results(
    settings: Settings, store: Store, scratch: Path | None = None, at: datetime | None = None
) -> tuple[list[StoredKeyResult], Store, bool]:
    """Sync the OKR files into the store when they changed; return the active KRs.

    Unchanged files are not parsed again: their fingerprint (a hash of the bytes) matches
    the one stored at the last sync. With ``scratch`` (a dry run), changed definitions are
    synced into a throwaway store in that folder, leaving the real one untouched.

    Returns:
        The active KRs, the store they were read from, and whether definitions were synced.
    """
    current = fingerprint(settings.resolved_okr_path())
    if current == store.definitions_fingerprint():
        return store.active_key_results(at), store, False
    okr_set = load_definitions(settings)
    target = store
    if scratch is not None:
        target = Store.open(f"sqlite:///{scratch / 'dry-run.db'}")
    target.sync_definitions(okr_set)
    return target.active_key_results(at), target, scratch is None


def needs_baseline(kr: StoredKeyResult, now: datetime) -> bool:
    """True when the KR's ``baseline: auto`` is still to be measured (its cycle has begun)."""
    return kr.baseline_auto and kr.baseline is None and kr.cycle_start <= now


def measure_baselines(
    krs: list[StoredKeyResult],
    settings: Settings,
    store: Store | None,
    pool: SourcePool,
    now: datetime,
    clock: Callable[[], datetime],
    limits: ConnectionLimits | None = None,
) -> list[StoredKeyResult]:
    """Measure ``baseline: auto`` once: the source's value at the cycle's start.

    Args:
        krs: The KRs of the run.
        settings: Connections and secrets.
        store: Where to keep the baselines (None in a dry run).
        pool: The run's open sources.
        now: The present; a cycle's baseline is measured once the cycle has begun.
        clock: Times the fetches.
        limits: The connections' limits shared with other runs (see ``run/limits.py``).
    """
    missing = [kr for kr in krs if needs_baseline(kr, now)]
    if not missing:
        return krs
    results = fetch_all(
        [
            FetchRequest(kr.kr_id, kr.ref, kr.source, kr.cycle_start, kr.cycle_start, kr.cycle_end)
            for kr in missing
        ],
        source_environment(settings),
        max_concurrency=settings.max_concurrency,
        clock=clock,
        pool=pool,
        limits=limits,
    )
    measured: dict[int, StoredKeyResult] = {}
    for kr, result in zip(missing, results, strict=True):
        if result.ok and result.value is not None:
            target = None if kr.target is None else resolve_target(kr.target, result.value)
            if store is not None:
                store.set_auto_baseline(kr.kr_id, result.value)
            measured[kr.kr_id] = replace(kr, baseline=result.value, target_value=target)
    return [measured.get(kr.kr_id, kr) for kr in krs]


def fetch_values(
    krs: list[StoredKeyResult],
    settings: Settings,
    as_of: datetime,
    pool: SourcePool,
    clock: Callable[[], datetime],
    progress: Progress | None = None,
    limits: ConnectionLimits | None = None,
    on_results: ResultsHook | None = None,
) -> list[FetchResult]:
    """Fetch every KR's value concurrently (bounded per connection and overall).

    Formula KRs are left out: they have nothing to fetch (see ``run/formulas.py``).
    ``progress`` is told ``(done, total)`` now and then, ``on_results`` each batch of
    values as it arrives (a :class:`~okr_pipeline.run.recorder.RunRecorder` scores and
    stores them meanwhile; see :func:`fetch_all`); ``limits`` are the connections' limits
    shared with other runs (see ``run/limits.py``).
    """
    requests = [
        FetchRequest(
            kr_id=kr.kr_id,
            kr_ref=kr.ref,
            source=kr.source,
            as_of=as_of,
            cycle_start=kr.cycle_start,
            cycle_end=kr.cycle_end,
        )
        for kr in krs
        # Formula KRs are not fetched: run_update computes them from these (run/formulas.py).
        if not is_formula(kr.source)
    ]
    return fetch_all(
        requests,
        source_environment(settings),
        max_concurrency=settings.max_concurrency,
        clock=clock,
        pool=pool,
        progress=progress,
        limits=limits,
        on_results=on_results,
    )


def fetch_counted(
    krs: list[StoredKeyResult],
    settings: Settings,
    as_of: datetime,
    pool: SourcePool,
    clock: Callable[[], datetime],
    on_results: ResultsHook | None = None,
) -> list[FetchResult]:
    """:func:`fetch_values`, telling how many KRs are fetched to :mod:`okr_pipeline.run.progress`.

    The fetch step of a run without Prefect: the CLI's progress bar (``fetching 12/40 KRs``)
    listens there.
    """
    return fetch_values(
        krs, settings, as_of, pool, clock, progress=fetch_counts, on_results=on_results
    )


def evaluate_and_store(
    krs: list[StoredKeyResult],
    results: list[FetchResult],
    store: Store,
    settings: Settings,
    run_id: int | None,
    as_of: datetime,
    flow_run_id: str | None,
    recorder: RunRecorder | None = None,
) -> list[EvaluationRecord]:
    """Score the values as of ``as_of`` and store them (replacing that as-of's rows).

    Without a ``run_id`` (a dry run) nothing is stored. A store failure keeps the values
    in a spool file (see :mod:`okr_pipeline.run.spool`) and raises. With the ``recorder``
    the fetch fed, only the values it was not given are scored here before the commit.

    Returns:
        One evaluation per result, in their order.
    """
    if recorder is not None:
        return recorder.finish(results)
    by_id = {kr.kr_id: kr for kr in krs}
    return store_results(
        store, settings, by_id, results, run_id=run_id, as_of=as_of, flow_run_id=flow_run_id
    )


def backfill_candidates(
    krs: list[StoredKeyResult], store: Store, as_of: datetime, replace_existing: bool
) -> list[StoredKeyResult]:
    """The KRs a backfill measures at ``as_of``: sources that take an as-of, not yet there.

    Args:
        krs: The KRs asked for.
        store: The store (to see what is there).
        as_of: The time to measure.
        replace_existing: Measure KRs that have a value at ``as_of`` again (else skip them).
    """
    chosen = [kr for kr in krs if takes_as_of(kr)]
    if replace_existing or not chosen:
        return chosen
    present = {m.kr_id for m in store.measurements([kr.kr_id for kr in chosen], at=as_of)}
    return [kr for kr in chosen if kr.kr_id not in present]


def takes_as_of(kr: StoredKeyResult) -> bool:
    """True when the KR's source answers for a given as-of (it can be backfilled)."""
    try:
        return parse_source_config(kr.source).uses_as_of()
    except Exception:  # noqa: BLE001 - an invalid stored source cannot be backfilled
        return False
