"""A run's rows written while the run still evaluates: one transaction, in a thread.

Storing 10,000 KRs' measurements and evaluations keeps a PostgreSQL server busy for a
few tenths of a second (a measurement goes into five indexes, each row is checked against
two foreign keys).
Written at the end, that is time the run waits; written by a thread while the run
evaluates the next chunk of KRs, the server works while the client computes. The thread
holds one connection and one transaction from first row to last, so the run's rows are
still stored all or nothing.

Only PostgreSQL gains: on SQLite the writing is this process's own work, so
:meth:`~okr_store.store.Store.writing_results` writes there at the end as before.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Collection, Sequence
from typing import Protocol

from sqlalchemy.engine import Engine

from okr_pipeline.okr_store import results as _results
from okr_pipeline.okr_store.records import EvaluationRecord, MeasurementRecord


class RowsWriter(Protocol):
    """Hands a run's rows to its transaction: evaluations, and the measurements they score."""

    def __call__(
        self,
        evaluations: Sequence[EvaluationRecord],
        measurements: Sequence[MeasurementRecord] = (),
    ) -> None:
        """Queue ``evaluations`` and the ``measurements`` not given at the start."""


#: A chunk of rows to write: measurements, then evaluations.
_Rows = tuple[Sequence[MeasurementRecord], Sequence[EvaluationRecord]]


class _Done:
    """Put on the queue: commit what was written."""


class _Abort(Exception):
    """Put on the queue, then raised in the thread: roll everything back."""


class ResultsWriter:
    """Writes a run's measurements at once, then its rows as they come, in a thread.

    Nothing is visible to other connections until :meth:`finish` commits; :meth:`abort`
    (or an error in the thread) rolls everything back.

    Args:
        engine: the store's engine (PostgreSQL).
        run_id: the run the rows belong to.
        measurements: measurements written first (a run that streams its rows gives none
            here and hands them to :meth:`add` with their evaluations).
        replacing: only these KRs may have rows at these as-ofs already; None: any.
    """

    def __init__(
        self,
        engine: Engine,
        run_id: int,
        measurements: Sequence[MeasurementRecord],
        replacing: Collection[int] | None,
    ) -> None:
        self._engine = engine
        self._run_id = run_id
        self._measurements = measurements
        self._replacing = replacing
        self._queue: queue.SimpleQueue[_Rows | _Done | _Abort] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="okr-store-writer", daemon=True)
        self._thread.start()

    def add(
        self,
        evaluations: Sequence[EvaluationRecord],
        measurements: Sequence[MeasurementRecord] = (),
    ) -> None:
        """Queue rows to be written in the run's transaction (measurements first)."""
        if evaluations or measurements:
            self._queue.put((measurements, evaluations))

    def finish(self) -> None:
        """Commit once everything queued is written.

        Raises:
            Exception: what the thread failed with (nothing of the run is stored then).
        """
        self._queue.put(_Done())
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Roll back whatever was written, and wait for the thread to end."""
        self._queue.put(_Abort())
        self._thread.join()

    def _write(self) -> None:
        run_id, replacing = self._run_id, self._replacing
        try:
            with self._engine.connect() as conn, conn.begin():
                _results.write_results(conn, run_id, self._measurements, [], replacing)
                while True:
                    item = self._queue.get()
                    if isinstance(item, _Done):
                        return
                    if isinstance(item, _Abort):
                        raise item
                    # The chunk's rows at these as-ofs replaced, as write_results does.
                    _results.write_results(conn, run_id, item[0], item[1], replacing)
        except _Abort:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in finish()
            self._error = exc


def gains_from_thread(engine: Engine) -> bool:
    """Whether writing in a thread helps: the database works in a process of its own."""
    return engine.dialect.name != "sqlite"
