"""The ``update_key_results`` flow: load → fetch → compute → store → publish.

The flow is thin on purpose: a handful of task runs whatever the number of KRs (a Prefect
task run costs milliseconds; a KR's query costs a fraction of one), with the work in plain
functions that the tests call directly.
"""

import contextlib
import gc
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from okr_pipeline.connectors.registry import parse_source_config
from okr_pipeline.okr_core.definitions import resolve_target
from okr_pipeline.okr_core.loader import fingerprint
from okr_pipeline.okr_core.settings import Settings, load_settings
from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.alerting import AlertSummary, run_alerts
from okr_pipeline.run.definitions import load_definitions, source_environment
from okr_pipeline.run.evaluate import outcome_of
from okr_pipeline.run.fetch import FetchRequest, FetchResult, SourcePool, fetch_all
from okr_pipeline.run.preflight import check_as_of, due_time, load_alert_routing
from okr_pipeline.run.record import (
    LEASE,
    close_crashed_runs,
    evaluate_at,
    heartbeat,
    open_store,
    replay_spools,
    run_status,
    store_results,
)
from okr_pipeline.run.select import select_key_results
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.utilities.annotations import quote

T = TypeVar("T")

ARTIFACT_KEY = "okr-run-results"
ARTIFACT_MAX_ROWS = 1000
_SEVERITY = {"error": 0, "off_track": 1, "stale": 2, "at_risk": 3, "no_data": 4, "on_track": 5}


class RunSummary:
    """What one run did, for the CLI and for callers of the flow.

    A plain class, not a dataclass, on purpose: Prefect walks every item of a dataclass
    (or list) a flow returns, which costs a noticeable share of a 10,000-KR run.

    Attributes:
        run_id: The run's id in the store (None for a dry run).
        as_of: The time the run evaluated.
        active: Active KRs in the store.
        measured: KRs measured in this run.
        statuses: How many KRs got each status.
        failed: ``(objective/kr, message)`` of each KR whose source failed.
        dry_run: True when nothing was stored.
        rows: One plain row per measured KR, worst status first.
        definitions_synced: True when changed OKR files were synced into the store.
        alerts: What the alert step sent, silenced, held back or failed to send.
    """

    def __init__(
        self,
        *,
        run_id: int | None,
        as_of: datetime,
        active: int,
        measured: int,
        statuses: dict[str, int],
        failed: list[tuple[str, str]],
        dry_run: bool,
        rows: list[dict[str, Any]],
        definitions_synced: bool,
        alerts: AlertSummary | None = None,
    ) -> None:
        self.run_id = run_id
        self.as_of = as_of
        self.active = active
        self.measured = measured
        self.statuses = statuses
        self.failed = failed
        self.dry_run = dry_run
        self.rows = rows
        self.definitions_synced = definitions_synced
        self.alerts = alerts or AlertSummary()

    @property
    def errors(self) -> int:
        """How many KRs' sources failed in this run."""
        return len(self.failed)

    def __repr__(self) -> str:
        return (
            f"RunSummary(run_id={self.run_id}, measured={self.measured}/{self.active}, "
            f"statuses={self.statuses}, errors={self.errors})"
        )


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


def untracked(value: T) -> T:
    """Pass ``value`` to a task without Prefect walking through it.

    Prefect visits every item of a task's inputs to track dependencies; over lists of
    10,000 KRs that costs more than the queries themselves. ``quote`` turns it off, and
    the task receives the value unchanged.
    """
    return cast(T, quote(value))


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@task(name="load-definitions", cache_policy=NO_CACHE)
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


def _requests(krs: list[StoredKeyResult], as_of: datetime) -> list[FetchRequest]:
    return [
        FetchRequest(
            kr_id=kr.kr_id,
            kr_ref=kr.ref,
            source=kr.source,
            as_of=as_of,
            cycle_start=kr.cycle_start,
            cycle_end=kr.cycle_end,
        )
        for kr in krs
    ]


@task(name="measure-auto-baselines", cache_policy=NO_CACHE)
def measure_baselines(
    krs: list[StoredKeyResult], settings: Settings, store: Store | None, pool: SourcePool
) -> list[StoredKeyResult]:
    """Measure ``baseline: auto`` once: the source's value at the cycle's start."""
    # Measured once the cycle has begun, as of its first moment.
    missing = [
        kr for kr in krs if kr.baseline_auto and kr.baseline is None and kr.cycle_start <= utcnow()
    ]
    if not missing:
        return krs
    results = fetch_all(
        [
            FetchRequest(kr.kr_id, kr.ref, kr.source, kr.cycle_start, kr.cycle_start, kr.cycle_end)
            for kr in missing
        ],
        source_environment(settings),
        max_concurrency=settings.max_concurrency,
        clock=utcnow,
        pool=pool,
    )
    measured: dict[int, StoredKeyResult] = {}
    for kr, result in zip(missing, results, strict=True):
        if result.ok and result.value is not None:
            target = None if kr.target is None else resolve_target(kr.target, result.value)
            if store is not None:
                store.set_auto_baseline(kr.kr_id, result.value)
            measured[kr.kr_id] = replace(kr, baseline=result.value, target_value=target)
    return [measured.get(kr.kr_id, kr) for kr in krs]


@task(name="fetch-values", cache_policy=NO_CACHE)
def fetch_values(
    krs: list[StoredKeyResult], settings: Settings, as_of: datetime, pool: SourcePool
) -> list[FetchResult]:
    """Fetch every KR's value concurrently (bounded per connection and overall)."""
    return fetch_all(
        _requests(krs, as_of),
        source_environment(settings),
        max_concurrency=settings.max_concurrency,
        clock=utcnow,
        pool=pool,
    )


@task(name="evaluate-and-store", cache_policy=NO_CACHE)
def evaluate_and_store(
    krs: list[StoredKeyResult],
    results: list[FetchResult],
    store: Store,
    settings: Settings,
    run_id: int | None,
    as_of: datetime,
    flow_run_id: str | None,
) -> list[EvaluationRecord]:
    """Score the values as of ``as_of`` and store them (replacing that as-of's rows).

    Without a ``run_id`` (a dry run) nothing is stored. A store failure keeps the values
    in a spool file (see :mod:`run.spool`) and raises.
    """
    by_id = {kr.kr_id: kr for kr in krs}
    if run_id is not None:
        return store_results(
            store, settings, by_id, results, run_id=run_id, as_of=as_of, flow_run_id=flow_run_id
        )
    return evaluate_at(store, settings, by_id, results, as_of)


def result_rows(
    krs: list[StoredKeyResult], evaluations: list[EvaluationRecord]
) -> list[dict[str, Any]]:
    """One plain row per evaluated KR, worst status first."""
    by_id = {kr.kr_id: kr for kr in krs}
    rows: list[dict[str, Any]] = [
        {
            "objective": by_id[ev.kr_id].objective_key,
            "id": by_id[ev.kr_id].kr_key,
            "value": None if ev.value is None else str(ev.value),
            "target": None
            if by_id[ev.kr_id].target_value is None
            else str(by_id[ev.kr_id].target_value),
            "progress": None if ev.progress is None else round(ev.progress, 4),
            "score": None if ev.score is None else round(ev.score, 4),
            "status": ev.status,
            "reason": ev.reason,
        }
        for ev in evaluations
    ]
    rows.sort(key=lambda r: (_SEVERITY.get(r["status"], 9), r["objective"], r["id"]))
    return rows


# Moves alert states, sends what is due to its routes, records every alert.
send_alerts = task(name="send-alerts", cache_policy=NO_CACHE)(run_alerts)


@task(name="publish-results", cache_policy=NO_CACHE)
def publish_results(summary: RunSummary) -> None:
    """Publish the run's results as a Prefect table artifact, worst first."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.statuses.items()))
    shown = summary.rows[:ARTIFACT_MAX_ROWS]
    more = len(summary.rows) - len(shown)
    create_table_artifact(
        shown or [{"objective": "", "id": "", "status": "nothing due"}],
        key=ARTIFACT_KEY,
        description=(
            f"{summary.measured} of {summary.active} KRs measured as of "
            f"{summary.as_of.isoformat(timespec='seconds')}: {counts or 'none'}; "
            f"{summary.errors} failed" + (f"; {more} more rows not shown" if more else "")
        ),
    )


def _mark_orphaned(flow_run_ids: list[str]) -> None:
    """Set the Prefect flow runs of crashed runs to Crashed (they were left Running)."""
    if flow_run_ids:
        from okr_pipeline.flows.prefect_server import mark_orphaned_flow_runs

        mark_orphaned_flow_runs(flow_run_ids)


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


@flow(name="update-key-results", log_prints=False)
def update_key_results(
    project_dir: str = ".",
    kr: list[str] | None = None,
    as_of: datetime | None = None,
    dry_run: bool = False,
    all_krs: bool = False,
    backfill: bool = False,
    replace_existing: bool = False,
    allow_future: bool = False,
) -> RunSummary:
    """Measure the KRs that are due (or the ones named), score them and store the results.

    A KR has one measurement per as-of: measuring an as-of again replaces it.

    Args:
        project_dir: The project folder (holds ``okrs/``, ``.env`` and ``okr.toml``).
        kr: Measure only these KRs (``objective/kr`` or a unique KR id), due or not.
        as_of: Evaluate as of this time instead of now (sources receive it as ``:as_of``).
        dry_run: Fetch and score, but store nothing.
        all_krs: Measure every active KR, due or not.
        backfill: Measure a past as-of: only sources that take an as-of, no alerts, and
            KRs that already have a value then are skipped unless ``replace_existing``.
        replace_existing: With ``backfill``, measure again what is already there.
        allow_future: Accept an ``as_of`` in the future.
    """
    settings = load_settings(Path(project_dir))
    routing = load_alert_routing(settings)  # a mistake in alerts.yaml stops the run early
    now = utcnow()
    when = (as_of or now).astimezone(UTC)
    check_as_of(when, now, allow_future)
    ctx = FlowRunContext.get()
    flow_run = ctx.flow_run if ctx else None
    flow_run_id = str(flow_run.id) if flow_run else None
    due_at = when if as_of else due_time(when, flow_run.expected_start_time if flow_run else None)
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(fewer_gc_pauses())
        real_store = open_store(settings)
        cleanup.callback(real_store.close)
        if not dry_run:
            _mark_orphaned(close_crashed_runs(real_store, now))
        scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory())) if dry_run else None
        krs, store, synced = load_key_results(settings, real_store, scratch, when)
        if store is not real_store:
            cleanup.callback(store.close)
        if not dry_run and replay_spools(store, settings, krs):
            krs = store.active_key_results(when)
        chosen = select_key_results(
            krs, as_of=due_at, names=kr or (), due_only=not (all_krs or kr or backfill)
        )
        if backfill:
            chosen = backfill_candidates(chosen, store, when, replace_existing)
        run_id = None if dry_run else store.start_run(when, flow_run_id, now + LEASE)
        try:
            with heartbeat(store, run_id):
                with SourcePool(source_environment(settings)) as pool:
                    chosen = measure_baselines(
                        untracked(chosen), settings, None if dry_run else store, pool
                    )
                    results = fetch_values(untracked(chosen), settings, when, pool)
                evaluations = evaluate_and_store(
                    untracked(chosen),
                    untracked(results),
                    store,
                    settings,
                    run_id,
                    when,
                    flow_run_id,
                )
                # Alerts follow the present: a rerun of an as-of, or a backfill of an
                # earlier one, must not move them (nor count as another evaluation).
                newer = {
                    k.kr_id
                    for k in chosen
                    if not backfill and (k.latest_as_of is None or k.latest_as_of < when)
                }
                alerts = send_alerts(
                    untracked([k for k in chosen if k.kr_id in newer]),
                    untracked([e for e in evaluations if e.kr_id in newer]),
                    untracked([r for r in results if r.kr_id in newer]),
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
            failed=[(by_id[r.kr_id].ref, r.error or "") for r in results if not r.ok]
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
        publish_results(untracked(summary))
    if summary.errors:
        get_run_logger().warning(
            "%d of %d KRs failed to measure; see 'okr status'", summary.errors, len(chosen)
        )
    return summary
