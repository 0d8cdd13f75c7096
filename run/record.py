"""Store what a run measured, and never lose it: evaluate, write, spool on failure, lease.

Prefect-free: the flow's tasks call these, and so can tests and other drivers.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from okr_pipeline.okr_core.errors import StoreUnavailableError
from okr_pipeline.okr_core.settings import Settings, mask_url
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord, StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.okr_store.store_errors import store_unavailable
from okr_pipeline.run.evaluate import evaluate_results, measurement_records
from okr_pipeline.run.fetch import FetchResult
from okr_pipeline.run.history import reevaluate
from okr_pipeline.run.spool import pending_spools, write_spool

logger = logging.getLogger(__name__)

#: A running run renews its lease this often; one that stops renewing for LEASE is dead.
LEASE = timedelta(minutes=5)
HEARTBEAT_SECONDS = LEASE.total_seconds() / 5


class RunNotStoredError(RuntimeError):
    """The store failed while saving a run for a reason that is not a setup problem."""


def open_store(settings: Settings) -> Store:
    """Open (and migrate) the store named by the settings."""
    return Store.open(settings.resolved_store_url())


def run_status(outcomes: Counter[str]) -> str:
    """``completed``; ``partial`` when some KRs failed; ``failed`` when all of them did."""
    errors = outcomes.get("error", 0)
    if not errors:
        return "completed"
    return "failed" if errors == sum(outcomes.values()) else "partial"


#: KRs evaluated together: their histories are in memory at once (45 points a KR
#: mid-quarter with daily runs: 10,000 KRs' took 130 MiB).
EVALUATE_CHUNK = 2000


def evaluate_at(
    store: Store,
    settings: Settings,
    key_results: Mapping[int, StoredKeyResult],
    results: Sequence[FetchResult],
    as_of: datetime,
    on_chunk: Callable[[Sequence[EvaluationRecord]], None] | None = None,
) -> list[EvaluationRecord]:
    """Evaluate the fetched values as of ``as_of`` from the history stored before it.

    The results are evaluated :data:`EVALUATE_CHUNK` KRs at a time, each chunk's
    history read just before it is used, so memory does not grow with KRs times points.
    ``on_chunk`` is given each chunk's evaluations as soon as they are made.
    """
    evaluations: list[EvaluationRecord] = []
    for start in range(0, len(results), EVALUATE_CHUNK):
        chunk = results[start : start + EVALUATE_CHUNK]
        ids = [result.kr_id for result in chunk]
        since = min((key_results[kr_id].cycle_start for kr_id in ids), default=as_of)
        history = store.history(ids, since=since, before=as_of)
        # The last good as-of is the last point of the history; only KRs with none in this
        # cycle need a look further back.
        last_good = {kr_id: points[-1][0] for kr_id, points in history.items() if points}
        missing = [kr_id for kr_id in ids if kr_id not in last_good]
        if missing:
            last_good.update(store.last_good_before(missing, as_of))
        evaluated = evaluate_results(
            key_results,
            chunk,
            history,
            as_of=as_of,
            last_good=last_good,
            stale_after_periods=settings.stale_after_periods,
        )
        del history  # before the next chunk's is read
        if on_chunk is not None:
            on_chunk(evaluated)
        evaluations += evaluated
    return evaluations


def store_results(
    store: Store,
    settings: Settings,
    key_results: Mapping[int, StoredKeyResult],
    results: Sequence[FetchResult],
    *,
    run_id: int,
    as_of: datetime,
    flow_run_id: str | None,
) -> list[EvaluationRecord]:
    """Evaluate the fetched values as of ``as_of``, store them, and re-evaluate later as-ofs.

    Each evaluation sees only the history before its as-of. If the store fails on the
    way, the measurements are written to a spool file first (see :mod:`run.spool`).

    Raises:
        StoreUnavailableError: the store failed for a setup reason (the message says
            where the values were kept).
        RunNotStoredError: it failed for another reason (values kept all the same).
    """
    measurements = measurement_records(results, as_of)
    try:
        # Read at this as-of, a KR's last as-of equals it only when it was measured then.
        again = {kr.kr_id for kr in key_results.values() if kr.last_as_of == as_of}
        # The store writes each chunk while the next one is evaluated, in one transaction.
        with store.writing_results(run_id, measurements, replacing=again) as write:
            evaluations = evaluate_at(store, settings, key_results, results, as_of, on_chunk=write)
        # Later as-ofs were evaluated without this value (a backfill): evaluate them again.
        later = [
            kr.kr_id
            for kr in key_results.values()
            if kr.latest_as_of is not None and kr.latest_as_of > as_of
        ]
        if later:
            reevaluate(
                store,
                key_results,
                later,
                after=as_of,
                stale_after_periods=settings.stale_after_periods,
            )
    except Exception as exc:
        raise spool_failed_run(exc, settings, as_of, flow_run_id, measurements) from exc
    return evaluations


def spool_failed_run(
    exc: Exception,
    settings: Settings,
    as_of: datetime,
    flow_run_id: str | None,
    measurements: Sequence[MeasurementRecord],
) -> Exception:
    """Keep the run's measurements in a spool file; return the error to raise."""
    url = settings.resolved_store_url()
    try:
        path = write_spool(settings.project_dir, url, as_of, flow_run_id, measurements)
        kept = (
            f"the {len(measurements)} values fetched were kept in {path}; the next run stores them"
        )
    except OSError as spool_error:
        kept = f"the values fetched could not be kept either ({spool_error})"
    setup = store_unavailable(exc, url)
    if setup is not None:
        return StoreUnavailableError(f"{str(setup).rstrip('.')}. Nothing was lost: {kept}.")
    return RunNotStoredError(
        f"the store {mask_url(url)} failed while saving the run "
        f"({type(exc).__name__}: {str(exc)[:300]}); {kept}"
    )


def replay_spools(store: Store, settings: Settings, key_results: Sequence[StoredKeyResult]) -> int:
    """Store the measurements that earlier runs spooled when the store failed.

    A measurement is skipped when its KR already has one at that as-of (measured since);
    the as-ofs it touches are evaluated as if it had been stored in time.

    Returns:
        How many measurements were stored.
    """
    by_id = {kr.kr_id: kr for kr in key_results}
    stored = 0
    for spooled in pending_spools(settings.project_dir, settings.resolved_store_url()):
        ids = [m.kr_id for m in spooled.measurements if m.kr_id in by_id]
        present = {m.kr_id for m in store.measurements(ids, at=spooled.as_of)}
        todo = [m for m in spooled.measurements if m.kr_id in by_id and m.kr_id not in present]
        run_id = store.start_run(spooled.as_of, spooled.flow_run_id, trigger="replay")
        store.record_results(run_id, todo, [])
        periods = settings.stale_after_periods
        reevaluate(store, by_id, ids, at=spooled.as_of, stale_after_periods=periods)
        reevaluate(store, by_id, ids, after=spooled.as_of, stale_after_periods=periods)
        outcomes = Counter(m.outcome for m in todo)
        store.finish_run(run_id, {"total": len(todo), **outcomes}, run_status(outcomes))
        spooled.path.unlink()
        stored += len(todo)
        logger.info("stored %d spooled values from %s", len(todo), spooled.path.name)
    return stored


def close_crashed_runs(store: Store, now: datetime) -> list[str]:
    """Close the runs whose process died; return their Prefect flow run ids."""
    closed = store.close_crashed_runs(now)
    for run in closed:
        logger.warning("run %d (as of %s) had stopped without finishing: closed as crashed",
                       run.id, run.as_of.isoformat(timespec="seconds"))  # fmt: skip
    return [run.flow_run_id for run in closed if run.flow_run_id]


@contextmanager
def heartbeat(store: Store, run_id: int | None) -> Iterator[None]:
    """Renew the run's lease in the background while the block runs."""
    if run_id is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                store.renew_lease(run_id, datetime.now(UTC) + LEASE)
            except Exception as exc:  # noqa: BLE001 - a missed beat only shortens the lease
                logger.warning("could not renew the run's lease: %s", type(exc).__name__)

    thread = threading.Thread(target=beat, name="okr-run-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
