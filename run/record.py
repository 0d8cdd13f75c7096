"""Keep what a run measured safe: open the store, spool on failure, replay spools, lease.

Prefect-free: the flow's tasks call these, and so can tests and other drivers.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from okr_pipeline.okr_core.errors import StoreUnavailableError
from okr_pipeline.okr_core.settings import Settings, mask_url
from okr_pipeline.okr_store.records import MeasurementRecord, StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.okr_store.store_errors import store_unavailable
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
