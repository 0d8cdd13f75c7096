"""A run's values scored and stored as they arrive, while the others are still fetched.

A run's fetch spends most of its time waiting on its sources, and the run's thread had
nothing to do meanwhile: scoring and storing 10,000 KRs came after the last query, a
third of the run. A :class:`RunRecorder` is handed each batch of values as the fetch
gets it (``fetch_all``'s ``on_results``, in the run's thread), scores them a chunk at a
time from the history stored before the as-of, and hands the rows to the store's writer,
which writes them in the run's one transaction while the queries go on
(:mod:`okr_store.results_writer`). The values the fetch does not give it (manual KRs'
check-ins, formulas) come at the end; :meth:`RunRecorder.finish` scores them, commits and
evaluates later as-ofs again (a backfill).

Nothing fetched is lost when the store fails: the recorder keeps every value it was given,
stops scoring, and :meth:`RunRecorder.finish` keeps them all in a spool file before it
raises (see :func:`okr_pipeline.run.record.spool_failed_run`). A run that stops on an error
before :meth:`~RunRecorder.finish` stores nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType

from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult
from okr_pipeline.okr_store.results_writer import RowsWriter
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.evaluate import evaluate_results, measurement_records
from okr_pipeline.run.fetch import FetchResult
from okr_pipeline.run.history import reevaluate
from okr_pipeline.run.record import spool_failed_run

__all__ = ["EVALUATE_CHUNK", "RunRecorder", "evaluate_chunk", "store_results"]

#: KRs scored together: their histories are in memory at once (45 points a KR mid-quarter
#: with daily runs: 10,000 KRs' took 130 MiB), and the last chunk is what a run waits for
#: after its last query.
EVALUATE_CHUNK = 1000


def evaluate_chunk(
    store: Store,
    settings: Settings,
    key_results: Mapping[int, StoredKeyResult],
    results: Sequence[FetchResult],
    as_of: datetime,
) -> list[EvaluationRecord]:
    """Score ``results`` as of ``as_of`` from the history stored before it (one read).

    Returns:
        One evaluation per result, in their order.
    """
    ids = [result.kr_id for result in results]
    since = min((key_results[kr_id].cycle_start for kr_id in ids), default=as_of)
    history = store.history(ids, since=since, before=as_of)
    # The last good as-of is the last point of the history; only KRs with none in this
    # cycle need a look further back.
    last_good = {kr_id: points[-1][0] for kr_id, points in history.items() if points}
    missing = [kr_id for kr_id in ids if kr_id not in last_good]
    if missing:
        last_good.update(store.last_good_before(missing, as_of))
    return evaluate_results(
        key_results,
        results,
        history,
        as_of=as_of,
        last_good=last_good,
        stale_after_periods=settings.stale_after_periods,
    )


class RunRecorder:
    """Scores a run's values and stores them as they arrive, all or nothing.

    Use it as a context manager: leaving the block without :meth:`finish` (an error)
    rolls back whatever was written.

    Args:
        store: The store (history is read from it, rows written to it).
        settings: The run's settings (staleness, where to spool).
        key_results: Every KR the run measures, by id (with any auto baseline measured).
        run_id: The run the rows belong to; None (a dry run): score, store nothing.
        as_of: The run's as-of.
        flow_run_id: Kept with spooled values if the store fails.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        key_results: Mapping[int, StoredKeyResult],
        *,
        run_id: int | None,
        as_of: datetime,
        flow_run_id: str | None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._key_results = key_results
        self._run_id = run_id
        self._as_of = as_of
        self._flow_run_id = flow_run_id
        self._results: dict[int, FetchResult] = {}
        self._pending: list[FetchResult] = []
        self._evaluations: dict[int, EvaluationRecord] = {}
        self._failure: Exception | None = None
        self._transaction = contextlib.ExitStack()
        self._write: RowsWriter | None = None

    def __enter__(self) -> RunRecorder:
        if self._run_id is not None:
            # Read at this as-of, a KR's last as-of equals it only when it was measured then.
            again = {kr.kr_id for kr in self._key_results.values() if kr.last_as_of == self._as_of}
            self._write = self._transaction.enter_context(
                self._store.writing_results(self._run_id, [], replacing=again)
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._write is not None:  # not finished: roll back
            self._write = None
            stopped = error or RuntimeError("the run stopped before its rows were complete")
            self._transaction.__exit__(type(stopped), stopped, stopped.__traceback__)

    def add(self, results: Sequence[FetchResult]) -> None:
        """Take values as they are fetched; a full chunk is scored and handed to the store."""
        for result in results:
            self._results[result.kr_id] = result
        self._pending += results
        if len(self._pending) >= EVALUATE_CHUNK:
            self._score_pending()

    def finish(self, results: Sequence[FetchResult]) -> list[EvaluationRecord]:
        """Score the values not added yet, commit, and evaluate later as-ofs again.

        Args:
            results: Every value of the run (those already added are not scored again).

        Returns:
            One evaluation per result, in their order.

        Raises:
            StoreUnavailableError: the store failed for a setup reason (the values are
                kept in a spool file, which the message names).
            RunNotStoredError: it failed for another reason (values kept all the same).
        """
        self.add([result for result in results if result.kr_id not in self._results])
        self._score_pending()
        write, self._write = self._write, None
        try:
            if self._failure is not None:
                raise self._failure
            if write is not None:
                self._transaction.close()  # commits
                self._reevaluate_later()
        except Exception as exc:
            self._transaction.__exit__(type(exc), exc, exc.__traceback__)
            if self._run_id is None:
                raise  # a dry run stores nothing, so it has nothing to keep either
            measurements = measurement_records(list(self._results.values()), self._as_of)
            raise spool_failed_run(
                exc, self._settings, self._as_of, self._flow_run_id, measurements
            ) from exc
        return [self._evaluations[result.kr_id] for result in results]

    def _score_pending(self) -> None:
        pending, self._pending = self._pending, []
        if not pending or self._failure is not None:
            return
        try:
            for start in range(0, len(pending), EVALUATE_CHUNK):
                chunk = pending[start : start + EVALUATE_CHUNK]
                evaluated = evaluate_chunk(
                    self._store, self._settings, self._key_results, chunk, self._as_of
                )
                if self._write is not None:
                    self._write(evaluated, measurement_records(chunk, self._as_of))
                for evaluation in evaluated:
                    self._evaluations[evaluation.kr_id] = evaluation
        except Exception as exc:  # noqa: BLE001 - the values are kept and spooled in finish()
            self._failure = exc

    def _reevaluate_later(self) -> None:
        # Later as-ofs were evaluated without this value (a backfill): evaluate them again.
        later = [
            kr.kr_id
            for kr in self._key_results.values()
            if kr.latest_as_of is not None and kr.latest_as_of > self._as_of
        ]
        if later:
            reevaluate(
                self._store,
                self._key_results,
                later,
                after=self._as_of,
                stale_after_periods=self._settings.stale_after_periods,
            )


def store_results(
    store: Store,
    settings: Settings,
    key_results: Mapping[int, StoredKeyResult],
    results: Sequence[FetchResult],
    *,
    run_id: int | None,
    as_of: datetime,
    flow_run_id: str | None,
) -> list[EvaluationRecord]:
    """Score the fetched values as of ``as_of``, store them, and re-evaluate later as-ofs.

    Each evaluation sees only the history before its as-of. If the store fails on the
    way, the measurements are written to a spool file first (see :mod:`run.spool`).
    Without a ``run_id`` (a dry run) nothing is stored.

    Raises:
        StoreUnavailableError: the store failed for a setup reason (the message says
            where the values were kept).
        RunNotStoredError: it failed for another reason (values kept all the same).
    """
    with RunRecorder(
        store, settings, key_results, run_id=run_id, as_of=as_of, flow_run_id=flow_run_id
    ) as recorder:
        return recorder.finish(results)
