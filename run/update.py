"""One update run, Prefect-free: load → select → fetch → evaluate and store → alert step.

:func:`run_update` is the whole run. Its steps come in a :class:`Steps`: plain functions by
default, so a test (or any other driver) runs it without Prefect; the Prefect flow passes
the same functions wrapped as tasks, so that each shows as a task run in the Prefect UI.
"""

from __future__ import annotations

import contextlib
import gc
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import Settings, load_settings, settings_in_blocks
from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.alerting import run_alerts
from okr_pipeline.run.definitions import source_environment
from okr_pipeline.run.evaluate import outcome_of
from okr_pipeline.run.fetch import FetchResult, SourcePool
from okr_pipeline.run.formulas import compute_formulas
from okr_pipeline.run.manual import Checkin, is_manual, manual_results
from okr_pipeline.run.preflight import check_as_of, due_time, load_alert_routing
from okr_pipeline.run.progress import report
from okr_pipeline.run.record import (
    LEASE,
    close_crashed_runs,
    heartbeat,
    open_store,
    replay_spools,
    run_status,
)
from okr_pipeline.run.recorder import RunRecorder
from okr_pipeline.run.select import select_key_results
from okr_pipeline.run.shards import RunJobs, measure_in_shards, shard_count
from okr_pipeline.run.steps import (
    backfill_candidates,
    evaluate_and_store,
    fetch_counted,
    load_key_results,
    measure_baselines,
    needs_baseline,
)
from okr_pipeline.run.summary import RunSummary, result_rows


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunRequest:
    """What a run is asked to do.

    Attributes:
        project_dir: The project folder (holds ``okrs/``, ``.env`` and ``okr.toml``).
        kr: Measure only these KRs (``objective/kr`` or a unique KR id), due or not.
        as_of: Evaluate as of this time instead of now (sources receive it as ``:as_of``).
        dry_run: Fetch and score, but store nothing.
        all_krs: Measure every active KR, due or not.
        backfill: Measure a past as-of: only sources that take an as-of, no alerts, and
            KRs that already have a value then are skipped unless ``replace_existing``.
        replace_existing: With ``backfill``, measure again what is already there.
        allow_future: Accept an ``as_of`` in the future.
        checkin: A value a person entered for a manual KR: the run measures that KR only,
            stores the value as its check-in at ``as_of`` and scores it
            (``okr_pipeline.run.checkin.record_checkin`` checks it first).
        shards: Split the run into this many shards (default: the settings'
            ``shards.count``; 1: not split). Needs :attr:`Steps.run_shards`; a dry run or a
            check-in is never split.
    """

    project_dir: Path = Path(".")
    kr: Sequence[str] = ()
    as_of: datetime | None = None
    dry_run: bool = False
    all_krs: bool = False
    backfill: bool = False
    replace_existing: bool = False
    allow_future: bool = False
    checkin: Checkin | None = None
    shards: int | None = None


def _publish_nothing(summary: RunSummary) -> None:
    """Without Prefect there is no artifact to publish."""


def _mark_nothing(flow_run_ids: list[str]) -> None:
    """Without Prefect there are no flow runs to mark."""


def refuse_prefect_blocks(settings: Settings) -> Settings:
    """Without Prefect, a connection or secret kept in a Prefect block cannot be read.

    Raises:
        ConfigError: A connection URL or a secret is a ``prefect-block://`` reference.
    """
    named = settings_in_blocks(settings)
    if named:
        raise ConfigError(
            "prefect-block:// connections need a run on Prefect (a configured PREFECT_API_URL, "
            f"or okr run --prefect): {', '.join(named)}"
        )
    return settings


@dataclass(frozen=True)
class Steps:
    """The steps of a run; a driver may wrap each (the Prefect flow makes them tasks).

    Attributes:
        load: :func:`okr_pipeline.run.steps.load_key_results`.
        baselines: :func:`okr_pipeline.run.steps.measure_baselines`.
        fetch: :func:`okr_pipeline.run.steps.fetch_counted` (``fetch_values`` telling its
            counts to :mod:`okr_pipeline.run.progress`); called with ``on_results``, which
            scores and stores each batch of values as it arrives (``run/recorder.py``).
        evaluate_and_store: :func:`okr_pipeline.run.steps.evaluate_and_store`; called with
            the run's ``recorder``, it scores the rest and commits.
        alerts: :func:`okr_pipeline.run.alerting.run_alerts`.
        publish: Publishes the summary (the Prefect flow: a table artifact).
        mark_crashed: Marks the orchestrator's runs of crashed runs (by flow run id).
        resolve_settings: Puts the values of ``prefect-block://`` connections and secrets
            into the settings (the Prefect flow reads the blocks; the default refuses them).
        run_shards: Runs a sharded run's shard jobs and waits for them, returning why each
            shard that did not finish failed (:mod:`okr_pipeline.run.shards`; the Prefect
            flow starts one flow run per shard on a work pool). None: runs are not split.
    """

    load: Callable[..., Any] = load_key_results
    baselines: Callable[..., Any] = measure_baselines
    fetch: Callable[..., Any] = fetch_counted
    evaluate_and_store: Callable[..., Any] = evaluate_and_store
    alerts: Callable[..., Any] = run_alerts
    publish: Callable[[RunSummary], None] = _publish_nothing
    mark_crashed: Callable[[list[str]], None] = field(default=_mark_nothing)
    resolve_settings: Callable[[Settings], Settings] = refuse_prefect_blocks
    run_shards: RunJobs | None = None


@contextlib.contextmanager
def fewer_gc_pauses(allocations: int = 50_000) -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector triggered less often.

    A run allocates a few objects per KR (rows, results, records), none of them in
    reference cycles, yet every 700 allocations the collector scans the young objects and
    every few scans all of them: at 10,000 KRs that took a third of the run's time.
    """
    threshold = gc.get_threshold()
    gc.set_threshold(max(allocations, threshold[0]), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def run_update(
    request: RunRequest,
    *,
    steps: Steps | None = None,
    flow_run_id: str | None = None,
    expected_start: datetime | None = None,
    settings: Settings | None = None,
    clock: Callable[[], datetime] | None = None,
) -> RunSummary:
    """Measure the KRs that are due (or the ones named), score them and store the results.

    A KR has one measurement per as-of: measuring an as-of again replaces it.

    Args:
        request: What to measure, as of when.
        steps: The steps (default: plain function calls).
        flow_run_id: The orchestrator's id of this run, stored with it.
        expected_start: When the orchestrator scheduled the run (due-ness is judged then
            when the run starts early).
        settings: The project's settings, when the caller has them (default: loaded
            from ``request.project_dir``).
        clock: The current time (default: the system clock); stamps the measurements.
    """
    run = steps or Steps()
    settings = run.resolve_settings(settings or load_settings(request.project_dir))
    routing = load_alert_routing(settings)  # a mistake in alerts.yaml stops the run early
    clock = clock or utcnow
    now = clock()
    when = (request.as_of or now).astimezone(UTC)
    check_as_of(when, now, request.allow_future)
    due_at = when if request.as_of else due_time(when, expected_start)
    dry_run, backfill = request.dry_run, request.backfill
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(fewer_gc_pauses())
        real_store = open_store(settings)
        cleanup.callback(real_store.close)
        if not dry_run:
            run.mark_crashed(close_crashed_runs(real_store, now))
        scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory())) if dry_run else None
        report("loading the OKR files")
        krs, store, synced = run.load(settings, real_store, scratch, when)
        if store is not real_store:
            cleanup.callback(store.close)
        if not dry_run and replay_spools(store, settings, krs):
            krs = store.active_key_results(when)
        checkin = request.checkin
        if checkin is not None:
            chosen = [k for k in krs if (k.ref, k.cycle) == (checkin.ref, checkin.cycle)]
            if not chosen:
                raise ConfigError(f"no KR {checkin.ref} in cycle {checkin.cycle} to check in")
        else:
            chosen = select_key_results(
                krs,
                as_of=due_at,
                names=request.kr,
                due_only=not (request.all_krs or request.kr or backfill),
            )
        if backfill:
            chosen = backfill_candidates(chosen, store, when, request.replace_existing)
        shards = shard_count(request.shards, settings)
        split = shards > 1 and run.run_shards is not None and not dry_run and checkin is None
        trigger = "checkin" if checkin else "backfill" if backfill else "run"
        run_id = None if dry_run else store.start_run(when, flow_run_id, now + LEASE, trigger)
        try:
            with heartbeat(store, run_id):
                if split:
                    assert run.run_shards is not None and run_id is not None  # split says so
                    report(f"measuring {len(chosen)} KRs in {shards} shards")
                    chosen, results, evaluations = measure_in_shards(
                        chosen,
                        krs,
                        store,
                        settings,
                        run_jobs=run.run_shards,
                        steps=run,
                        count=shards,
                        project_dir=str(request.project_dir),
                        run_id=run_id,
                        as_of=when,
                        clock=clock,
                        flow_run_id=flow_run_id,
                    )
                else:
                    chosen, results, evaluations = _measure_here(
                        run,
                        chosen,
                        krs,
                        store,
                        settings,
                        run_id,
                        when,
                        now,
                        clock,
                        flow_run_id,
                        checkin,
                        dry_run,
                    )
                # Alerts follow the present: a rerun of an as-of, or a backfill of an
                # earlier one, must not move them (nor count as another evaluation).
                newer = {
                    k.kr_id
                    for k in chosen
                    if not backfill and (k.latest_as_of is None or k.latest_as_of < when)
                }
                report("alerting")
                alerts = run.alerts(
                    [k for k in chosen if k.kr_id in newer],
                    [e for e in evaluations if e.kr_id in newer],
                    [r for r in results if r.kr_id in newer],
                    store=store,
                    settings=settings,
                    routing=routing,
                    run_id=run_id,
                    now=when,
                    dry_run=dry_run,
                )
                outcomes = Counter(outcome_of(r) for r in results)
                if run_id is not None:
                    store.finish_run(
                        run_id, {"total": len(results), **outcomes}, run_status(outcomes)
                    )
        except BaseException:
            if run_id is not None:
                with contextlib.suppress(Exception):  # the store may be what failed
                    store.finish_run(run_id, {"total": len(chosen)}, "failed")
            raise
        by_id = {k.kr_id: k for k in chosen}
        ok_ids = {r.kr_id for r in results if r.ok}
        summary = RunSummary(
            run_id=run_id,
            as_of=when,
            active=len(krs),
            measured=len(chosen),
            statuses=dict(Counter(ev.status for ev in evaluations)),
            failed=[(by_id[r.kr_id].ref, r.error_line()) for r in results if not r.ok]
            + [
                (by_id[ev.kr_id].ref, ev.reason)
                for ev in evaluations
                if ev.status == "error" and ev.kr_id in ok_ids
            ],
            dry_run=dry_run,
            rows=result_rows(chosen, evaluations),
            definitions_synced=synced,
            alerts=alerts,
        )
        run.publish(summary)
    return summary


def _measure_here(
    run: Steps,
    chosen: list[StoredKeyResult],
    krs: list[StoredKeyResult],
    store: Store,
    settings: Settings,
    run_id: int | None,
    when: datetime,
    now: datetime,
    clock: Callable[[], datetime],
    flow_run_id: str | None,
    checkin: Checkin | None,
    dry_run: bool,
) -> tuple[list[StoredKeyResult], list[FetchResult], list[EvaluationRecord]]:
    """The measuring part of a run in this process: baselines, fetch, formulas, store.

    Returns:
        The KRs (with any auto baseline measured now), their results and evaluations.
    """
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(SourcePool(source_environment(settings)))
        if any(needs_baseline(kr, now) for kr in chosen):  # else no step (a task run) at all
            baseline_store = None if dry_run else store
            chosen = run.baselines(chosen, settings, baseline_store, pool, now, clock)
        # The values are scored and stored as they arrive (run/recorder.py), the rows
        # committed by the evaluate-and-store step once the last ones are in.
        recorder = stack.enter_context(
            RunRecorder(
                store,
                settings,
                {kr.kr_id: kr for kr in chosen},
                run_id=run_id,
                as_of=when,
                flow_run_id=flow_run_id,
            )
        )
        # Manual KRs are never fetched: their check-ins are read (run/manual.py).
        fetched = [k for k in chosen if not is_manual(k.source)]
        report(f"fetching {len(fetched)} KR{'' if len(fetched) == 1 else 's'}")
        results = run.fetch(fetched, settings, when, pool, clock, on_results=recorder.add)
        pool.close()  # the sources' sessions are not needed while the rest is stored
        results = manual_results(chosen, results, store, when, clock, checkin)
        # Formula KRs (issue 8) are computed from the values just fetched, after them.
        results = compute_formulas(chosen, results, krs, store, when, clock)
        report("storing the results")
        evaluations = run.evaluate_and_store(
            chosen, results, store, settings, run_id, when, flow_run_id, recorder=recorder
        )
    return chosen, results, evaluations
